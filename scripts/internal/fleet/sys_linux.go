package fleet

import "syscall"

// sysProcAttr puts the child in its own process group, so a Ctrl-C in the terminal
// reaches only the launcher, which then stops children in order; and asks the kernel to
// send SIGTERM to the child if the launcher itself dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}

func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }
