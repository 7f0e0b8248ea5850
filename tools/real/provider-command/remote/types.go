// Package remote is this project's stand-in for the `remote` module of
// pulumi-command v1.2.1: it implements the one resource the pms-secrets program
// uses, command:remote:Command. It is NOT the upstream code; see ../README.md.
//
// The Go types below reproduce the upstream property names, optionality,
// defaults, secret flags and replaceOnChanges flags, because pulumi-go-provider's
// `infer` derives the wire behaviour (Check defaults, Diff kinds, secret flow
// from inputs to outputs) from exactly these tags. Getting a tag wrong would
// change what the engine does, so they mirror v1.2.1 one for one.
package remote

import (
	"github.com/pulumi/pulumi-go-provider/infer"
)

// Defaults of v1.2.1 (the Node SDK applies the same ones before sending, and
// Check applies them again for other callers).
const (
	defaultDialErrorLimit = 10
	unlimitedDialErrors   = -1
	defaultPerDialTimeout = 15
	defaultPort           = 22
	defaultUser           = "root"
)

// Command is the resource controller for command:remote:Command.
type Command struct{}

// Annotate sets the resource description and its token. The token is set
// explicitly so that it does not depend on this Go package's name.
func (c *Command) Annotate(a infer.Annotator) {
	a.Describe(&c, "Stand-in (pms-secrets project) for pulumi-command v1.2.1 "+
		"remote.Command: runs a command on a remote host over SSH.")
	a.SetToken("remote", "Command")
}

// CommandInputs are the inputs of command:remote:Command.
type CommandInputs struct {
	// Triggers replace the resource when any element changes (the Node SDK
	// also sends replaceOnChanges ["triggers[*]"]).
	Triggers *[]any `pulumi:"triggers,optional" provider:"replaceOnChanges"`

	Create *string `pulumi:"create,optional"`
	Update *string `pulumi:"update,optional"`
	Delete *string `pulumi:"delete,optional"`

	Stdin   *string  `pulumi:"stdin,optional"`
	Logging *Logging `pulumi:"logging,optional"`
	// The whole connection object is a secret, as upstream marks it.
	Connection             *Connection       `pulumi:"connection" provider:"secret"`
	Environment            map[string]string `pulumi:"environment,optional"`
	AddPreviousOutputInEnv *bool             `pulumi:"addPreviousOutputInEnv,optional"`
}

// Annotate describes the inputs (schema only; no behaviour depends on it).
func (c *CommandInputs) Annotate(a infer.Annotator) {
	a.Describe(&c.Triggers, "Values whose change replaces the resource (create again, then delete the old one).")
	a.Describe(&c.Create, "Command run once when the resource is created; also on update when `update` is unset.")
	a.Describe(&c.Update, "Command run when inputs other than triggers change. Defaults to `create`.")
	a.Describe(&c.Delete, "Command run when the resource is deleted. Nothing runs if unset.")
	a.Describe(&c.Stdin, "Written to the command's standard input, which is then closed.")
	a.Describe(&c.Logging, "Which output streams are streamed to the engine as status lines. "+
		"Defaults to stdout and stderr.")
	a.Describe(&c.Connection, "How to reach the remote host.")
	a.Describe(&c.Environment, "Variables sent with SSH `env` requests; the server must accept them (AcceptEnv).")
	a.Describe(&c.AddPreviousOutputInEnv, "Send the previous stdout/stderr as PULUMI_COMMAND_STDOUT and "+
		"PULUMI_COMMAND_STDERR. Defaults to true.")
}

// BaseOutputs are the captured streams of the last successful run.
type BaseOutputs struct {
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

// Annotate describes the outputs.
func (c *BaseOutputs) Annotate(a infer.Annotator) {
	a.Describe(&c.Stdout, "Standard output of the last run, one trailing newline removed.")
	a.Describe(&c.Stderr, "Standard error of the last run, one trailing newline removed.")
}

// CommandOutputs is the state: every input echoed, plus stdout/stderr.
type CommandOutputs struct {
	CommandInputs
	BaseOutputs
}

// connectionBase holds the fields shared by the target and the proxy.
type connectionBase struct {
	User               *string  `pulumi:"user,optional"`
	Password           *string  `pulumi:"password,optional"           provider:"secret"`
	Host               *string  `pulumi:"host"`
	Port               *float64 `pulumi:"port,optional"`
	PrivateKey         *string  `pulumi:"privateKey,optional"         provider:"secret"`
	PrivateKeyPassword *string  `pulumi:"privateKeyPassword,optional" provider:"secret"`
	AgentSocketPath    *string  `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int     `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int     `pulumi:"perDialTimeout,optional"`
	HostKey            *string  `pulumi:"hostKey,optional"`
}

// Connection is the SSH target, optionally reached through a proxy.
type Connection struct {
	connectionBase
	Proxy *ProxyConnection `pulumi:"proxy,optional"`
}

// Annotate sets the v1.2.1 defaults that Check applies.
func (c *Connection) Annotate(a infer.Annotator) {
	a.Describe(&c, "SSH connection settings.")
	annotateBase(a, &c.connectionBase)
	a.Describe(&c.Proxy, "A bastion host to connect through.")
}

// ProxyConnection is a bastion host.
type ProxyConnection struct{ connectionBase }

// Annotate sets the v1.2.1 defaults that Check applies.
func (c *ProxyConnection) Annotate(a infer.Annotator) {
	a.Describe(&c, "SSH connection settings of the bastion host.")
	annotateBase(a, &c.connectionBase)
}

func annotateBase(a infer.Annotator, c *connectionBase) {
	a.Describe(&c.User, "User to log in as. Defaults to root.")
	a.SetDefault(&c.User, defaultUser)
	a.Describe(&c.Password, "Password (also answers keyboard-interactive prompts).")
	a.Describe(&c.Host, "Host name or address.")
	a.Describe(&c.Port, "TCP port. Defaults to 22.")
	a.SetDefault(&c.Port, defaultPort)
	a.Describe(&c.PrivateKey, "Private key (PEM/OpenSSH), tried before the password.")
	a.Describe(&c.PrivateKeyPassword, "Passphrase of an encrypted private key.")
	a.Describe(&c.AgentSocketPath, "SSH agent socket. Defaults to $SSH_AUTH_SOCK when set.")
	a.Describe(&c.DialErrorLimit, "Failed dials tolerated before giving up (N allows N+1 attempts); -1 is unlimited. "+
		"Defaults to 10.")
	a.SetDefault(&c.DialErrorLimit, defaultDialErrorLimit)
	a.Describe(&c.PerDialTimeout, "Seconds allowed for each TCP connect (not the SSH handshake); 0 is no limit. "+
		"Defaults to 15.")
	a.SetDefault(&c.PerDialTimeout, defaultPerDialTimeout)
	a.Describe(&c.HostKey, "Expected host key in authorized_keys format; unchecked when unset.")
}

// Logging selects which streams are streamed to the engine.
type Logging string

// The four values accepted by v1.2.1.
const (
	LogStdout          Logging = "stdout"
	LogStderr          Logging = "stderr"
	LogStdoutAndStderr Logging = "stdoutAndStderr"
	NoLogging          Logging = "none"
)

// Values makes Logging an enum for infer (Check rejects other strings).
func (Logging) Values() []infer.EnumValue[Logging] {
	return []infer.EnumValue[Logging]{
		{Name: string(LogStdout), Value: LogStdout, Description: "Stream stdout only."},
		{Name: string(LogStderr), Value: LogStderr, Description: "Stream stderr only."},
		{Name: string(LogStdoutAndStderr), Value: LogStdoutAndStderr, Description: "Stream both."},
		{Name: string(NoLogging), Value: NoLogging, Description: "Stream nothing."},
	}
}

// streamsStdout reports whether stdout lines go to the engine; unset means yes.
func (l *Logging) streamsStdout() bool {
	return l == nil || *l == LogStdout || *l == LogStdoutAndStderr
}

// streamsStderr reports whether stderr lines go to the engine; unset means yes.
func (l *Logging) streamsStderr() bool {
	return l == nil || *l == LogStderr || *l == LogStdoutAndStderr
}
