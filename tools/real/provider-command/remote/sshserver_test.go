package remote

// An in-process SSH server on 127.0.0.1 for the tests. It behaves like sshd
// in the ways the provider can observe: it authenticates by public key or
// password, accepts or refuses `env` requests (AcceptEnv), runs an `exec`
// request with /bin/sh -c (sshd uses the user's login shell), streams
// stdin/stdout/stderr and reports the exit status. It records what the client
// did so tests can assert on it: TCP connections, completed handshakes,
// commands, environment, PTY requests and direct-tcpip (proxy) channels.

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// serverOptions configures a test server.
type serverOptions struct {
	hostKey   ssh.Signer // defaults to a fresh ed25519 key
	clientKey ssh.PublicKey
	password  string
	acceptEnv bool
	// stall: accept TCP connections and never speak SSH (a wedged host).
	stall bool
}

type execRecord struct {
	command string
	env     map[string]string
	pty     bool
}

type testServer struct {
	t    *testing.T
	opts serverOptions
	ln   net.Listener
	cfg  *ssh.ServerConfig

	mu         sync.Mutex
	tcpConns   int
	handshakes int
	execs      []execRecord
	forwards   []string
	open       []net.Conn
}

func startServer(t *testing.T, opts serverOptions) *testServer {
	t.Helper()
	if opts.hostKey == nil {
		opts.hostKey = newEd25519Signer(t)
	}
	s := &testServer{t: t, opts: opts}
	s.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if opts.clientKey != nil && string(key.Marshal()) == string(opts.clientKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	if opts.password != "" {
		s.cfg.PasswordCallback = func(_ ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if string(pw) == opts.password {
				return nil, nil
			}
			return nil, errors.New("wrong password")
		}
	}
	s.cfg.AddHostKey(opts.hostKey)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.ln = ln
	go s.acceptLoop()
	t.Cleanup(s.close)
	return s
}

func (s *testServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *testServer) close() {
	_ = s.ln.Close()
	s.dropConnections()
}

// dropConnections closes every accepted TCP connection (used to release a
// client stuck in a stalled handshake).
func (s *testServer) dropConnections() {
	s.mu.Lock()
	conns := s.open
	s.open = nil
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (s *testServer) counts() (tcp, handshakes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpConns, s.handshakes
}

func (s *testServer) recordedExecs() []execRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]execRecord(nil), s.execs...)
}

func (s *testServer) acceptLoop() {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.tcpConns++
		s.open = append(s.open, conn)
		s.mu.Unlock()
		if s.opts.stall {
			continue // hold the socket open, say nothing
		}
		go s.serveConn(conn)
	}
}

func (s *testServer) serveConn(conn net.Conn) {
	sconn, chans, reqs, err := ssh.NewServerConn(conn, s.cfg)
	if err != nil {
		_ = conn.Close()
		return
	}
	s.mu.Lock()
	s.handshakes++
	s.mu.Unlock()
	defer sconn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			go s.serveSession(nc)
		case "direct-tcpip":
			go s.serveForward(nc)
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unsupported")
		}
	}
}

func (s *testServer) serveSession(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	env := map[string]string{}
	pty := false
	for req := range reqs {
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if err := ssh.Unmarshal(req.Payload, &kv); err != nil || !s.opts.acceptEnv {
				_ = req.Reply(false, nil)
				continue
			}
			env[kv.Name] = kv.Value
			_ = req.Reply(true, nil)
		case "pty-req":
			pty = true
			_ = req.Reply(false, nil)
		case "exec":
			var cmdReq struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &cmdReq); err != nil {
				_ = req.Reply(false, nil)
				return
			}
			_ = req.Reply(true, nil)
			s.mu.Lock()
			s.execs = append(s.execs, execRecord{command: cmdReq.Command, env: env, pty: pty})
			s.mu.Unlock()
			status := runShell(cmdReq.Command, env, ch)
			_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
			return
		default:
			_ = req.Reply(false, nil)
		}
	}
}

// runShell runs the command like sshd: a shell, stdin from the channel (EOF
// when the client closes it), stdout and stderr on their own streams.
func runShell(command string, env map[string]string, ch ssh.Channel) uint32 {
	cmd := exec.Command("/bin/sh", "-c", command)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = ch
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exitErr):
		return uint32(exitErr.ExitCode())
	default:
		return 127
	}
}

// serveForward implements direct-tcpip, so the server can act as a bastion.
func (s *testServer) serveForward(nc ssh.NewChannel) {
	var req struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &req); err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "bad payload")
		return
	}
	target := net.JoinHostPort(req.Host, strconv.Itoa(int(req.Port)))
	s.mu.Lock()
	s.forwards = append(s.forwards, target)
	s.mu.Unlock()
	up, err := net.Dial("tcp", target)
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		_ = up.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		_, _ = io.Copy(up, ch)
		_ = up.(*net.TCPConn).CloseWrite()
	}()
	_, _ = io.Copy(ch, up)
	_ = ch.Close()
	_ = up.Close()
}

// Key helpers.

func newEd25519Signer(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func newECDSASigner(t *testing.T) ssh.Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

// newRSASigner returns an RSA host key signer that offers only the given
// signature algorithms (e.g. only rsa-sha2-256/512, like OpenSSH >= 8.8).
func newRSASigner(t *testing.T, algorithms ...string) ssh.Signer {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	restricted, err := ssh.NewSignerWithAlgorithms(signer.(ssh.AlgorithmSigner), algorithms)
	if err != nil {
		t.Fatal(err)
	}
	return restricted
}

// clientKey is a client identity: the PEM text the program would pass as
// privateKey, and the signer for agents.
type clientKey struct {
	pemText string
	signer  ssh.Signer
	raw     ed25519.PrivateKey
}

func newClientKey(t *testing.T) clientKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return clientKey{pemText: string(pem.EncodeToMemory(block)), signer: signer, raw: priv}
}

// authorizedLine renders a public key the way `hostKey` is written.
func authorizedLine(k ssh.PublicKey) string {
	return string(ssh.MarshalAuthorizedKey(k))
}
