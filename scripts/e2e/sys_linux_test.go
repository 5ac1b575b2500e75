package e2e

import "syscall"

// childAttr makes a stack the test started die with the test process (a timed-out or
// killed `go test` must not leave a stack running).
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
