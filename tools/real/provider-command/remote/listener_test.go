package remote

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// unacceptedListener returns a loopback address whose TCP connect hangs: a
// socket listening with backlog 0 that never accepts, whose accept queue is
// then filled, so Linux drops further SYNs. It is how a connect timeout can
// be provoked without sending traffic off the machine.
func unacceptedListener(t *testing.T) (*net.TCPAddr, func()) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeFD := func() { _ = syscall.Close(fd) }
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		closeFD()
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		closeFD()
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		closeFD()
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}
	var fillers []net.Conn
	cleanup := func() {
		for _, c := range fillers {
			_ = c.Close()
		}
		closeFD()
	}
	for range 16 {
		c, err := net.DialTimeout("tcp", addr.String(), 300*time.Millisecond)
		if err != nil {
			return addr, cleanup // the queue is full: connects now hang
		}
		fillers = append(fillers, c)
	}
	cleanup()
	t.Fatal("could not fill the listen queue: the connect-timeout case cannot be provoked on this kernel")
	return nil, nil
}
