package remote

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// noAgent makes sure the developer's own agent does not take part.
func noAgent(t *testing.T) { t.Setenv(agentSocketEnv, "") }

func TestCheckAppliesDefaultsAndKeepsConnectionSecret(t *testing.T) {
	noAgent(t)
	h := newHarness(t)
	// A caller that did not apply the SDK's defaults (e.g. another SDK).
	conn := resource.MakeSecret(resource.NewPropertyValue(map[string]any{"host": "127.0.0.1"}))
	checked := h.check(nil, inputs(conn, map[string]any{"create": "true"}))
	c := checked["connection"]
	if !c.IsSecret() {
		t.Fatalf("connection not secret after Check: %v", c)
	}
	obj := c.SecretValue().Element.ObjectValue()
	for key, want := range map[string]any{"user": "root", "port": 22.0, "dialErrorLimit": 10.0, "perDialTimeout": 15.0} {
		got := obj[resource.PropertyKey(key)]
		if got.V != want {
			t.Errorf("default %s = %v, want %v", key, got.V, want)
		}
	}
	// pulumi-go-provider v1.3.0 does not check enum values, so v1.2.1 accepts
	// any logging string (and then streams nothing, as for "none").
	resp, err := h.server.Check(h.ctx, &pulumirpc.CheckRequest{
		Urn: testURN,
		News: h.marshal(inputs(connection("127.0.0.1", 22, nil),
			map[string]any{"create": "true", "logging": "everything"})),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetFailures()) != 0 || h.unmarshal(resp.GetInputs())["logging"].StringValue() != "everything" {
		t.Fatalf("logging=everything: failures %v, inputs %v", resp.GetFailures(), resp.GetInputs())
	}
	everything := Logging("everything")
	if everything.streamsStdout() || everything.streamsStderr() {
		t.Errorf("an unknown logging value streams output")
	}
}

func TestCreateRunsCommandWithStdinAndCapturesOutput(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	srv := startServer(t, serverOptions{clientKey: key.signer.PublicKey(), acceptEnv: true})
	h := newHarness(t)

	create := `read -r line; echo "got:$line"; echo "warn" >&2; cat`
	in := h.check(nil, inputs(connection("127.0.0.1", srv.port(), map[string]any{"privateKey": key.pemText}),
		map[string]any{"create": create, "stdin": "first\nrest\n"}))
	id, out, err := h.create(in, false)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !strings.HasPrefix(id, "rollout-web1") || len(id) != len("rollout-web1")+8 {
		t.Errorf("id %q is not <name><8 hex>", id)
	}
	if got := str(out, "stdout"); got != "got:first\nrest" {
		t.Errorf("stdout = %q (one trailing newline must be removed)", got)
	}
	if got := str(out, "stderr"); got != "warn" {
		t.Errorf("stderr = %q", got)
	}
	if out["stdout"].IsSecret() || out["stderr"].IsSecret() {
		t.Errorf("stdout/stderr are secret; upstream leaves them plain (additionalSecretOutputs is the program's job)")
	}
	if !out["connection"].IsSecret() {
		t.Errorf("connection output is not secret")
	}
	if str(out, "create") != create || str(out, "stdin") != "first\nrest\n" {
		t.Errorf("inputs not echoed into state: %v", out)
	}
	execs := srv.recordedExecs()
	if len(execs) != 1 || execs[0].command != create {
		t.Fatalf("server saw %+v, want one exec of the create command", execs)
	}
	if execs[0].pty {
		t.Errorf("a PTY was requested")
	}
	if len(execs[0].env) != 0 {
		t.Errorf("env sent on first create: %v", execs[0].env)
	}
	// Default logging streams every stdout and stderr line as a status message.
	lines := h.statusLines()
	for _, want := range []string{"got:first", "rest", "warn"} {
		if !containsLine(lines, want) {
			t.Errorf("status lines %q lack %q", lines, want)
		}
	}
}

func TestPreviewCreateDoesNotConnect(t *testing.T) {
	noAgent(t)
	srv := startServer(t, serverOptions{})
	h := newHarness(t)
	in := h.check(nil, inputs(connection("127.0.0.1", srv.port(), nil), map[string]any{"create": "touch /x"}))
	_, out, err := h.create(in, true)
	if err != nil {
		t.Fatalf("preview create: %v", err)
	}
	if tcp, _ := srv.counts(); tcp != 0 {
		t.Errorf("preview dialled the host %d times", tcp)
	}
	if !out["stdout"].IsComputed() || !out["stderr"].IsComputed() {
		t.Errorf("stdout/stderr should be unknown in preview: %v", out)
	}
}

func TestLoggingModes(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	srv := startServer(t, serverOptions{clientKey: key.signer.PublicKey()})
	cases := []struct {
		mode         string // "" = unset
		wantOut      bool
		wantErrLines bool
	}{
		{"", true, true},
		{"stdoutAndStderr", true, true},
		{"stdout", true, false},
		{"stderr", false, true},
		{"none", false, false},
	}
	for _, tc := range cases {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			h := newHarness(t)
			fields := map[string]any{"create": "echo to-out; echo to-err >&2"}
			if tc.mode != "" {
				fields["logging"] = tc.mode
			}
			in := h.check(nil, inputs(connection("127.0.0.1", srv.port(), map[string]any{"privateKey": key.pemText}), fields))
			_, out, err := h.create(in, false)
			if err != nil {
				t.Fatal(err)
			}
			lines := h.statusLines()
			if containsLine(lines, "to-out") != tc.wantOut || containsLine(lines, "to-err") != tc.wantErrLines {
				t.Errorf("status lines %q: want stdout=%v stderr=%v", lines, tc.wantOut, tc.wantErrLines)
			}
			// Capture is independent of logging.
			if str(out, "stdout") != "to-out" || str(out, "stderr") != "to-err" {
				t.Errorf("outputs %q/%q", str(out, "stdout"), str(out, "stderr"))
			}
		})
	}
}

func TestCommandFailureErrorShapeAndNoState(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	srv := startServer(t, serverOptions{clientKey: key.signer.PublicKey()})
	h := newHarness(t)
	create := "echo partial; exit 3"
	in := h.check(nil, inputs(connection("127.0.0.1", srv.port(), map[string]any{"privateKey": key.pemText}),
		map[string]any{"create": create}))
	id, out, err := h.create(in, false)
	if err == nil {
		t.Fatalf("create succeeded: %s %v", id, out)
	}
	want := "Process exited with status 3: running \"echo partial; exit 3\":\npartial\n"
	if err.Error() != want {
		t.Errorf("error\n got %q\nwant %q", err.Error(), want)
	}
	if id != "" || out != nil {
		t.Errorf("a failed create returned state (id %q, %v); upstream returns none", id, out)
	}
	// stderr joins the text too.
	in = h.check(nil, inputs(connection("127.0.0.1", srv.port(), map[string]any{"privateKey": key.pemText}),
		map[string]any{"create": "echo boom >&2; false"}))
	if _, _, err = h.create(in, false); err == nil || err.Error() != "Process exited with status 1: running \"echo boom >&2; false\":\nboom\n" {
		t.Errorf("stderr failure text: %v", err)
	}
}

func TestDialRetriesEveryErrorNPlusOneTimes(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	other := newClientKey(t)
	// The server does not know the key: authentication fails every time,
	// and v1.2.1 retries authentication failures like any other.
	srv := startServer(t, serverOptions{clientKey: other.signer.PublicKey()})
	h := newHarness(t)
	in := h.check(nil, inputs(connection("127.0.0.1", srv.port(),
		map[string]any{"privateKey": key.pemText, "dialErrorLimit": 2.0}), map[string]any{"create": "true"}))
	_, _, err := h.create(in, false)
	if err == nil {
		t.Fatal("create succeeded with an unknown key")
	}
	if !strings.HasPrefix(err.Error(), "after 2 failed attempts: ssh: handshake failed: ssh: unable to authenticate") {
		t.Errorf("error = %q", err)
	}
	if tcp, _ := srv.counts(); tcp != 3 {
		t.Errorf("server saw %d connections, want 3 (dialErrorLimit 2 => 3 attempts)", tcp)
	}
	lines := h.statusLines()
	if !containsLine(lines, "Dial 1/2 failed: retrying") || !containsLine(lines, "Dial 2/2 failed: retrying") ||
		anyContains(lines, "Dial 3/2") {
		t.Errorf("retry status lines: %q", lines)
	}

	// Refused connections: the exact v1.2.1 text, one attempt with limit 0.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	in = h.check(nil, inputs(connection("127.0.0.1", closedPort,
		map[string]any{"privateKey": key.pemText, "dialErrorLimit": 0.0}), map[string]any{"create": "true"}))
	_, _, err = h.create(in, false)
	want := fmt.Sprintf("after 0 failed attempts: dial tcp 127.0.0.1:%d: connect: connection refused", closedPort)
	if err == nil || err.Error() != want {
		t.Errorf("refused: got %v, want %q", err, want)
	}
}

func TestHostKeyPinning(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	hostKey := newEd25519Signer(t)
	srv := startServer(t, serverOptions{clientKey: key.signer.PublicKey(), hostKey: hostKey})
	h := newHarness(t)

	// The right key passes.
	in := h.check(nil, inputs(connection("127.0.0.1", srv.port(), map[string]any{
		"privateKey": key.pemText, "hostKey": authorizedLine(hostKey.PublicKey()),
	}), map[string]any{"create": "true"}))
	if _, _, err := h.create(in, false); err != nil {
		t.Fatalf("pinned correct key: %v", err)
	}

	// A different key of the same type: mismatch, and it is retried too.
	wrong := newEd25519Signer(t).PublicKey()
	before, _ := srv.counts()
	in = h.check(nil, inputs(connection("127.0.0.1", srv.port(), map[string]any{
		"privateKey": key.pemText, "hostKey": authorizedLine(wrong), "dialErrorLimit": 1.0,
	}), map[string]any{"create": "true"}))
	_, _, err := h.create(in, false)
	if err == nil || err.Error() != "after 1 failed attempts: ssh: handshake failed: ssh: host key mismatch" {
		t.Errorf("mismatch error = %v", err)
	}
	if after, _ := srv.counts(); after-before != 2 {
		t.Errorf("mismatch attempts = %d, want 2", after-before)
	}

	// An unparsable key fails before any dial, without retries.
	before, _ = srv.counts()
	in = h.check(nil, inputs(connection("127.0.0.1", srv.port(), map[string]any{
		"privateKey": key.pemText, "hostKey": "not a key",
	}), map[string]any{"create": "true"}))
	_, _, err = h.create(in, false)
	if err == nil || !strings.HasPrefix(err.Error(), "failed to parse host key: ") {
		t.Errorf("bad host key error = %v", err)
	}
	if after, _ := srv.counts(); after != before {
		t.Errorf("bad host key still dialled")
	}
}

// The pinned key's type is the ONLY host key algorithm offered. For RSA that
// is "ssh-rsa" (SHA-1): a server that, like OpenSSH >= 8.8, offers only
// rsa-sha2-256/512 cannot agree, while without a pin the same server works.
func TestPinnedKeyRestrictsHostKeyAlgorithm(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	h := newHarness(t)
	run := func(srv *testServer, hostKey string) error {
		over := map[string]any{"privateKey": key.pemText, "dialErrorLimit": 0.0}
		if hostKey != "" {
			over["hostKey"] = hostKey
		}
		in := h.check(nil, inputs(connection("127.0.0.1", srv.port(), over), map[string]any{"create": "true"}))
		_, _, err := h.create(in, false)
		return err
	}

	modern := newRSASigner(t, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSASHA512)
	modernSrv := startServer(t, serverOptions{clientKey: key.signer.PublicKey(), hostKey: modern})
	err := run(modernSrv, authorizedLine(modern.PublicKey()))
	if err == nil || !strings.Contains(err.Error(), "no common algorithm for host key") {
		t.Errorf("pinned ssh-rsa vs rsa-sha2-only server: %v", err)
	}
	if err := run(modernSrv, ""); err != nil {
		t.Errorf("unpinned vs rsa-sha2-only server: %v", err)
	}

	legacy := newRSASigner(t, ssh.KeyAlgoRSA)
	legacySrv := startServer(t, serverOptions{clientKey: key.signer.PublicKey(), hostKey: legacy})
	if err := run(legacySrv, authorizedLine(legacy.PublicKey())); err != nil {
		t.Errorf("pinned ssh-rsa vs ssh-rsa server: %v", err)
	}

	ec := newECDSASigner(t)
	ecSrv := startServer(t, serverOptions{clientKey: key.signer.PublicKey(), hostKey: ec})
	if err := run(ecSrv, authorizedLine(ec.PublicKey())); err != nil {
		t.Errorf("pinned ecdsa: %v", err)
	}
}

func startAgent(t *testing.T, keys ...clientKey) string {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, k := range keys {
		if err := keyring.Add(agent.AddedKey{PrivateKey: k.raw}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _ = agent.ServeAgent(keyring, c); _ = c.Close() }()
		}
	}()
	return path
}

func TestAgentSocket(t *testing.T) {
	key := newClientKey(t)
	srv := startServer(t, serverOptions{clientKey: key.signer.PublicKey()})
	h := newHarness(t)

	// SSH_AUTH_SOCK alone authenticates: no key or password in the inputs.
	t.Setenv(agentSocketEnv, startAgent(t, key))
	in := h.check(nil, inputs(connection("127.0.0.1", srv.port(), nil), map[string]any{"create": "echo via-agent"}))
	_, out, err := h.create(in, false)
	if err != nil || str(out, "stdout") != "via-agent" {
		t.Fatalf("agent from SSH_AUTH_SOCK: %v %v", err, out)
	}

	// agentSocketPath wins over SSH_AUTH_SOCK.
	t.Setenv(agentSocketEnv, startAgent(t, newClientKey(t)))
	in = h.check(nil, inputs(connection("127.0.0.1", srv.port(), map[string]any{
		"agentSocketPath": startAgent(t, key),
	}), map[string]any{"create": "true"}))
	if _, _, err := h.create(in, false); err != nil {
		t.Errorf("explicit agentSocketPath: %v", err)
	}

	// A dead SSH_AUTH_SOCK fails the run at once, even with a valid private
	// key, before any dial and without retries.
	dead := filepath.Join(t.TempDir(), "gone.sock")
	t.Setenv(agentSocketEnv, dead)
	before, _ := srv.counts()
	in = h.check(nil, inputs(connection("127.0.0.1", srv.port(), map[string]any{"privateKey": key.pemText}),
		map[string]any{"create": "true"}))
	_, _, err = h.create(in, false)
	want := "dial unix " + dead + ": connect: no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("dead agent: got %v, want %q", err, want)
	}
	if after, _ := srv.counts(); after != before {
		t.Errorf("dead agent socket still dialled the host")
	}
}

// perDialTimeout bounds the TCP connect and nothing else: a host that accepts
// and then says nothing keeps the create waiting well past the timeout.
func TestPerDialTimeoutBoundsOnlyTCPConnect(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	stalled := startServer(t, serverOptions{stall: true})
	h := newHarness(t)
	in := h.check(nil, inputs(connection("127.0.0.1", stalled.port(), map[string]any{
		"privateKey": key.pemText, "perDialTimeout": 1.0, "dialErrorLimit": 0.0,
	}), map[string]any{"create": "true"}))

	done := make(chan error, 1)
	go func() {
		_, _, err := h.create(in, false)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("create returned within 3s against a stalled host (perDialTimeout 1s): %v", err)
	case <-time.After(3 * time.Second):
	}
	// Release it: the handshake then fails with EOF.
	stalled.dropConnections()
	select {
	case err := <-done:
		// EOF or a reset, depending on whether the client's version line was
		// still unread when the socket closed.
		if err == nil || !strings.HasPrefix(err.Error(), "after 0 failed attempts: ssh: handshake failed: ") {
			t.Errorf("after release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("create still blocked after the connection was closed")
	}
}

func TestPerDialTimeoutDoesBoundTheConnect(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	addr, cleanup := unacceptedListener(t)
	defer cleanup()
	h := newHarness(t)
	in := h.check(nil, inputs(connection("127.0.0.1", addr.Port, map[string]any{
		"privateKey": key.pemText, "perDialTimeout": 1.0, "dialErrorLimit": 0.0,
	}), map[string]any{"create": "true"}))
	start := time.Now()
	_, _, err := h.create(in, false)
	elapsed := time.Since(start)
	want := fmt.Sprintf("after 0 failed attempts: dial tcp 127.0.0.1:%d: i/o timeout", addr.Port)
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	if elapsed < 900*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("connect timeout took %v, want about 1s", elapsed)
	}
}

func TestDiffUpdateVersusReplace(t *testing.T) {
	noAgent(t)
	h := newHarness(t)
	conn := connection("127.0.0.1", 22, map[string]any{"privateKey": "k"})
	base := h.check(nil, inputs(conn, map[string]any{"create": "a", "triggers": []any{"v1"}}))
	state := base.Copy()
	state["stdout"] = resource.NewProperty("")
	state["stderr"] = resource.NewProperty("")

	same := h.check(base, inputs(conn, map[string]any{"create": "a", "triggers": []any{"v1"}}))
	if d := h.diff("id", state, base, same); d.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
		t.Errorf("unchanged inputs: %v", d)
	}

	cmdChanged := h.check(base, inputs(conn, map[string]any{"create": "b", "triggers": []any{"v1"}}))
	d := h.diff("id", state, base, cmdChanged)
	if d.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME || len(d.GetReplaces()) != 0 ||
		d.GetDetailedDiff()["create"].GetKind() != pulumirpc.PropertyDiff_UPDATE {
		t.Errorf("create changed: want update, got %v", d)
	}

	connChanged := h.check(base, inputs(connection("127.0.0.1", 2222, map[string]any{"privateKey": "k"}),
		map[string]any{"create": "a", "triggers": []any{"v1"}}))
	d = h.diff("id", state, base, connChanged)
	if d.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME || len(d.GetReplaces()) != 0 {
		t.Errorf("connection changed: want update, got %v", d)
	}

	trigChanged := h.check(base, inputs(conn, map[string]any{"create": "a", "triggers": []any{"v2"}}))
	d = h.diff("id", state, base, trigChanged)
	if d.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME {
		t.Fatalf("triggers changed: no change reported: %v", d)
	}
	// What pulumi-go-provider v1.3.0 (and so v1.2.1) reports for an element
	// change: the detailed diff key is "triggers[0]", which its
	// replaceOnChanges lookup (by top-level property name) does not match, so
	// the provider reports an UPDATE; the replacement comes from the Node SDK's
	// replaceOnChanges ["triggers[*]"], which the engine applies.
	if kind := d.GetDetailedDiff()["triggers[0]"].GetKind(); kind != pulumirpc.PropertyDiff_UPDATE ||
		len(d.GetReplaces()) != 0 {
		t.Errorf("triggers[0] diff: kind %v, replaces %v", kind, d.GetReplaces())
	}
	// Adding triggers where there were none is a whole-property change, which
	// the provider itself marks as a replace.
	noTrig := h.check(nil, inputs(conn, map[string]any{"create": "a"}))
	noTrigState := noTrig.Copy()
	addTrig := h.check(noTrig, inputs(conn, map[string]any{"create": "a", "triggers": []any{"v1"}}))
	d = h.diff("id", noTrigState, noTrig, addTrig)
	if d.GetDetailedDiff()["triggers"].GetKind() != pulumirpc.PropertyDiff_ADD_REPLACE {
		t.Errorf("triggers added: %v", d)
	}
}

func TestUpdateAndDeleteCommands(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	srv := startServer(t, serverOptions{clientKey: key.signer.PublicKey(), acceptEnv: true})
	h := newHarness(t)
	conn := connection("127.0.0.1", srv.port(), map[string]any{"privateKey": key.pemText})

	in := h.check(nil, inputs(conn, map[string]any{"create": "echo v1; echo e1 >&2", "delete": `echo "del:$PULUMI_COMMAND_STDOUT"`}))
	id, state, err := h.create(in, false)
	if err != nil {
		t.Fatal(err)
	}

	// No `update`: the new `create` runs, with the previous output in env.
	news := h.check(in, inputs(conn, map[string]any{
		"create": `echo "v2 prev=$PULUMI_COMMAND_STDOUT/$PULUMI_COMMAND_STDERR"`, "delete": `echo "del:$PULUMI_COMMAND_STDOUT"`,
	}))
	state, err = h.update(id, state, in, news)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(state, "stdout"); got != "v2 prev=v1/e1" {
		t.Errorf("update via create: stdout %q", got)
	}

	// `update` set: it runs instead of create; environment is sent.
	news2 := h.check(news, inputs(conn, map[string]any{
		"create": "echo never", "update": `echo "upd $FOO"`, "environment": map[string]any{"FOO": "bar"},
		"delete": `echo "del:$PULUMI_COMMAND_STDOUT"`,
	}))
	state, err = h.update(id, state, news, news2)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(state, "stdout"); got != "upd bar" {
		t.Errorf("update command: stdout %q", got)
	}

	// addPreviousOutputInEnv false: no PULUMI_COMMAND_* sent.
	news3 := h.check(news2, inputs(conn, map[string]any{
		"create": "true", "update": `echo "[$PULUMI_COMMAND_STDOUT]"`, "addPreviousOutputInEnv": false,
	}))
	state3, err := h.update(id, state, news2, news3)
	if err != nil {
		t.Fatal(err)
	}
	if got := str(state3, "stdout"); got != "[]" {
		t.Errorf("addPreviousOutputInEnv=false still sent output: %q", got)
	}

	// Delete runs `delete` with the stored stdout.
	n := len(srv.recordedExecs())
	if err := h.delete(id, state, news2); err != nil {
		t.Fatal(err)
	}
	execs := srv.recordedExecs()
	if len(execs) != n+1 || execs[n].command != `echo "del:$PULUMI_COMMAND_STDOUT"` ||
		execs[n].env["PULUMI_COMMAND_STDOUT"] != "upd bar" {
		t.Errorf("delete exec: %+v", execs[n:])
	}

	// No `delete`: nothing connects.
	before, _ := srv.counts()
	if err := h.delete(id, state3, news3); err != nil {
		t.Fatal(err)
	}
	if after, _ := srv.counts(); after != before {
		t.Errorf("delete without a delete command dialled the host")
	}
}

func TestFailedUpdateReturnsNoState(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	srv := startServer(t, serverOptions{clientKey: key.signer.PublicKey()})
	h := newHarness(t)
	conn := connection("127.0.0.1", srv.port(), map[string]any{"privateKey": key.pemText})
	in := h.check(nil, inputs(conn, map[string]any{"create": "echo ok"}))
	id, state, err := h.create(in, false)
	if err != nil {
		t.Fatal(err)
	}
	news := h.check(in, inputs(conn, map[string]any{"create": "exit 9"}))
	out, err := h.update(id, state, in, news)
	if err == nil || err.Error() != "Process exited with status 9: running \"exit 9\":\n" || out != nil {
		t.Errorf("failed update: %v %v", err, out)
	}
}

func TestEnvironmentRefusedByServer(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	srv := startServer(t, serverOptions{clientKey: key.signer.PublicKey(), acceptEnv: false})
	h := newHarness(t)
	conn := connection("127.0.0.1", srv.port(), map[string]any{"privateKey": key.pemText})

	// `environment` refused: the run fails, logged as an error.
	in := h.check(nil, inputs(conn, map[string]any{"create": "true", "environment": map[string]any{"FOO": "x"}}))
	_, _, err := h.create(in, false)
	if err == nil || err.Error() != `could not set environment variable "FOO": ssh: setenv failed` {
		t.Errorf("refused environment: %v", err)
	}
	if !anyContains(h.logs(diag.Error), "Unable to set 'FOO'") {
		t.Errorf("no error log for FOO: %q", h.logs(diag.Error))
	}
	if len(srv.recordedExecs()) != 0 {
		t.Errorf("command ran although its environment was refused")
	}

	// The previous output refused: warning only, the command still runs.
	in = h.check(nil, inputs(conn, map[string]any{"create": "echo first"}))
	id, state, err := h.create(in, false)
	if err != nil {
		t.Fatal(err)
	}
	news := h.check(in, inputs(conn, map[string]any{"create": "echo second"}))
	state, err = h.update(id, state, in, news)
	if err != nil || str(state, "stdout") != "second" {
		t.Fatalf("update with refused previous output: %v %v", err, state)
	}
	if !anyContains(h.logs(diag.Warning), "Unable to set 'PULUMI_COMMAND_STDOUT'") {
		t.Errorf("no warning for PULUMI_COMMAND_STDOUT: %q", h.logs(diag.Warning))
	}
}

func TestPasswordAndProxy(t *testing.T) {
	noAgent(t)
	key := newClientKey(t)
	target := startServer(t, serverOptions{password: "pw-target"})
	bastion := startServer(t, serverOptions{clientKey: key.signer.PublicKey()})
	h := newHarness(t)
	conn := connection("127.0.0.1", target.port(), map[string]any{
		"password": "pw-target",
		"proxy": map[string]any{
			"host": "127.0.0.1", "port": float64(bastion.port()), "user": "root", "privateKey": key.pemText,
			"dialErrorLimit": 10.0, "perDialTimeout": 15.0,
		},
	})
	in := h.check(nil, inputs(conn, map[string]any{"create": "echo through"}))
	_, out, err := h.create(in, false)
	if err != nil || str(out, "stdout") != "through" {
		t.Fatalf("via proxy: %v %v", err, out)
	}
	bastion.mu.Lock()
	forwards := append([]string(nil), bastion.forwards...)
	bastion.mu.Unlock()
	if len(forwards) != 1 || forwards[0] != fmt.Sprintf("127.0.0.1:%d", target.port()) {
		t.Errorf("bastion forwards: %v", forwards)
	}
	if tcp, _ := target.counts(); tcp != 1 {
		t.Errorf("target connections %d", tcp)
	}
}

// There is no Read in v1.2.1: refresh echoes the stored state and never
// contacts the host, so drift on the host is invisible to `pulumi refresh`.
func TestReadEchoesStateWithoutConnecting(t *testing.T) {
	noAgent(t)
	srv := startServer(t, serverOptions{})
	h := newHarness(t)
	in := h.check(nil, inputs(connection("127.0.0.1", srv.port(), nil), map[string]any{"create": "x"}))
	state := in.Copy()
	state["stdout"] = resource.NewProperty("recorded")
	state["stderr"] = resource.NewProperty("")
	resp, err := h.server.Read(h.ctx, &pulumirpc.ReadRequest{
		Id: "rollout-web1abcd1234", Urn: testURN, Properties: h.marshal(state), Inputs: h.marshal(in),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := str(h.unmarshal(resp.GetProperties()), "stdout"); got != "recorded" || resp.GetId() != "rollout-web1abcd1234" {
		t.Errorf("read returned id %q stdout %q", resp.GetId(), got)
	}
	if tcp, _ := srv.counts(); tcp != 0 {
		t.Errorf("read dialled the host")
	}
}
