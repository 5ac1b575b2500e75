//go:build unix && !linux

package fleet

import "syscall"

// sysProcAttr puts the child in its own process group, so a Ctrl-C in the terminal
// reaches only the launcher, which then stops children in order.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
