package presence

// Settled reports whether the watcher has handled the bucket's entries up to rev and
// written everything it derived from them (tests wait for it before they check that
// something did not happen).
func (w *Watcher) Settled(rev uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ready || w.rev < rev {
		return false
	}
	for _, st := range w.agents {
		if st.next != nil || st.queued || st.inflight || st.retrying {
			return false
		}
	}
	return true
}

// Handled reports whether the watcher has handled the bucket's entries up to rev
// (written or not).
func (w *Watcher) Handled(rev uint64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rev >= rev
}
