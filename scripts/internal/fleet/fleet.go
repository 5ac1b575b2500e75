// Package fleet supervises the local stack's child processes: it starts them with
// line-prefixed output, reports the first one that exits on its own, and stops them in
// order (later stages first, SIGTERM, then SIGKILL for stragglers).
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Process is one child to run.
type Process struct {
	Name  string
	Path  string
	Args  []string
	Env   []string // the complete environment of the child
	Stage int      // Stop stops higher stages first (gateway after services at start, before them at stop)
}

// Exit describes how a child ended.
type Exit struct {
	Name   string
	Pid    int
	Code   int    // exit code; -1 when a signal ended it
	Signal string // the signal that ended it, if any
	Err    error  // set when waiting failed for another reason
}

func (e Exit) String() string {
	switch {
	case e.Err != nil && e.Code < 0 && e.Signal == "":
		return fmt.Sprintf("%s (pid %d) ended: %v", e.Name, e.Pid, e.Err)
	case e.Signal != "":
		return fmt.Sprintf("%s (pid %d) was ended by signal %s", e.Name, e.Pid, e.Signal)
	default:
		return fmt.Sprintf("%s (pid %d) exited with code %d", e.Name, e.Pid, e.Code)
	}
}

// Clean reports a zero exit code.
func (e Exit) Clean() bool { return e.Code == 0 && e.Signal == "" && e.Err == nil }

// ErrStopping is returned by Start once Stop has begun.
var ErrStopping = errors.New("fleet: stopping")

// Supervisor runs children. Zero value is not usable; use New.
type Supervisor struct {
	out         *Output
	stopTimeout time.Duration

	mu       sync.Mutex
	stopping bool
	children []*child
	failed   chan Exit
}

type child struct {
	proc Process
	cmd  *exec.Cmd
	done chan struct{}
	exit Exit
}

// New returns a supervisor writing children's output to out; Stop gives each stage
// stopTimeout to exit after SIGTERM.
func New(out *Output, stopTimeout time.Duration) *Supervisor {
	return &Supervisor{out: out, stopTimeout: stopTimeout, failed: make(chan Exit, 64)}
}

// Start starts p and returns once it runs (its pid is printed).
func (s *Supervisor) Start(p Process) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return 0, ErrStopping
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env = p.Env
	stdout, stderr := s.out.Writer(p.Name), s.out.Writer(p.Name)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = sysProcAttr()
	// A grandchild that inherited the output pipes must not keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("fleet: start %s: %w", p.Name, err)
	}
	c := &child{proc: p, cmd: cmd, done: make(chan struct{})}
	s.children = append(s.children, c)
	s.out.Printf(p.Name, "started %s (pid %d)", p.Path, cmd.Process.Pid)
	go s.wait(c, stdout, stderr)
	return cmd.Process.Pid, nil
}

func (s *Supervisor) wait(c *child, outs ...io.Closer) {
	err := c.cmd.Wait()
	for _, o := range outs {
		_ = o.Close()
	}
	ex := Exit{Name: c.proc.Name, Pid: c.cmd.Process.Pid, Code: -1}
	if st := c.cmd.ProcessState; st != nil {
		ex.Code = st.ExitCode()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ex.Signal = ws.Signal().String()
		}
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		ex.Err = err
	}
	c.exit = ex
	close(c.done)

	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	if !stopping {
		s.failed <- ex
	}
}

// Failed delivers every child that exits while the supervisor is not stopping.
func (s *Supervisor) Failed() <-chan Exit { return s.failed }

// Stop stops every child: stage by stage from the highest, SIGTERM to the stage's
// children at once, then up to the stop timeout (or until ctx is done) before SIGKILL.
// It returns how each child ended, in stop order.
func (s *Supervisor) Stop(ctx context.Context) []Exit {
	s.mu.Lock()
	s.stopping = true
	children := slices.Clone(s.children)
	s.mu.Unlock()

	stages := map[int][]*child{}
	var order []int
	for _, c := range children {
		if _, ok := stages[c.proc.Stage]; !ok {
			order = append(order, c.proc.Stage)
		}
		stages[c.proc.Stage] = append(stages[c.proc.Stage], c)
	}
	slices.Sort(order)
	slices.Reverse(order)

	var exits []Exit
	for _, st := range order {
		exits = append(exits, s.stopStage(ctx, stages[st])...)
	}
	return exits
}

func (s *Supervisor) stopStage(ctx context.Context, cs []*child) []Exit {
	for _, c := range cs {
		select {
		case <-c.done:
			continue
		default:
		}
		s.out.Printf(c.proc.Name, "stopping (SIGTERM to pid %d)", c.cmd.Process.Pid)
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	timer := time.NewTimer(s.stopTimeout)
	defer timer.Stop()
	exits := make([]Exit, 0, len(cs))
	for _, c := range cs {
		select {
		case <-c.done:
		case <-timer.C:
			s.kill(c, fmt.Sprintf("still running %s after SIGTERM; sending SIGKILL", s.stopTimeout))
		case <-ctx.Done():
			s.kill(c, "stop cut short; sending SIGKILL")
		}
		ex := c.exit
		if ex.Clean() {
			s.out.Printf(c.proc.Name, "stopped")
		} else {
			s.out.Alertf(c.proc.Name, "did not stop cleanly: %s", ex)
		}
		exits = append(exits, ex)
	}
	return exits
}

// kill sends SIGKILL to c's process group (Start put each child in its own) and waits.
func (s *Supervisor) kill(c *child, why string) {
	select {
	case <-c.done:
		return
	default:
	}
	s.out.Alertf(c.proc.Name, "%s", why)
	killGroup(c.cmd.Process.Pid)
	<-c.done
}
