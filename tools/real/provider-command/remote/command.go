package remote

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Names of the variables that carry the previous run's output.
const (
	previousStdoutEnv = "PULUMI_COMMAND_STDOUT"
	previousStderrEnv = "PULUMI_COMMAND_STDERR"
)

// Compile-time proof that Command has the lifecycle methods infer looks for.
// There is deliberately no Read and no Diff: infer's defaults are what v1.2.1
// uses (Read echoes the stored state, so `pulumi refresh` never notices drift;
// Diff compares old and new inputs, replacing on `triggers`).
var (
	_ infer.CustomResource[CommandInputs, CommandOutputs] = (*Command)(nil)
	_ infer.CustomUpdate[CommandInputs, CommandOutputs]   = (*Command)(nil)
	_ infer.CustomDelete[CommandOutputs]                  = (*Command)(nil)
)

// Create runs `create` (if set) once. On error there is no partial state: the
// engine records nothing for a new resource, and keeps the old one on replace.
func (*Command) Create(
	ctx context.Context, req infer.CreateRequest[CommandInputs],
) (infer.CreateResponse[CommandOutputs], error) {
	state := CommandOutputs{CommandInputs: req.Inputs}
	id, err := resource.NewUniqueHex(req.Name, 8, 0)
	if err != nil {
		return infer.CreateResponse[CommandOutputs]{Output: state}, err
	}
	if req.DryRun || req.Inputs.Create == nil {
		return infer.CreateResponse[CommandOutputs]{ID: id, Output: state}, nil
	}
	err = state.run(ctx, *req.Inputs.Create, req.Inputs.Logging)
	return infer.CreateResponse[CommandOutputs]{ID: id, Output: state}, err
}

// Update runs `update`, else `create`, else nothing. The previous stdout and
// stderr are kept unless the command runs successfully.
func (*Command) Update(
	ctx context.Context, req infer.UpdateRequest[CommandInputs, CommandOutputs],
) (infer.UpdateResponse[CommandOutputs], error) {
	state := CommandOutputs{CommandInputs: req.Inputs, BaseOutputs: req.State.BaseOutputs}
	if req.DryRun {
		return infer.UpdateResponse[CommandOutputs]{Output: state}, nil
	}
	var err error
	switch {
	case req.Inputs.Update != nil:
		err = state.run(ctx, *req.Inputs.Update, req.Inputs.Logging)
	case req.Inputs.Create != nil:
		err = state.run(ctx, *req.Inputs.Create, req.Inputs.Logging)
	}
	return infer.UpdateResponse[CommandOutputs]{Output: state}, err
}

// Delete runs `delete` with the stored state's connection; nothing when unset.
func (*Command) Delete(ctx context.Context, req infer.DeleteRequest[CommandOutputs]) (infer.DeleteResponse, error) {
	state := req.State
	if state.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	return infer.DeleteResponse{}, state.run(ctx, *state.Delete, state.Logging)
}

// run executes cmd in one SSH session: no PTY, the server runs it with the
// user's login shell (`$SHELL -c cmd`). On success stdout/stderr are stored
// with one trailing newline removed. On failure the error is
// `<ssh error>: running "<cmd>":\n<stdout and stderr interleaved>`.
//
// The context only bounds the dial retries: once the session runs, nothing
// cancels it (x/crypto's Session.Run takes no context), exactly like v1.2.1,
// so a host that stalls keeps the run waiting.
func (c *CommandOutputs) run(ctx context.Context, cmd string, logging *Logging) error {
	if c.Connection == nil {
		return fmt.Errorf("connection: required input is missing")
	}
	client, err := c.Connection.dial(ctx)
	if err != nil {
		return err
	}
	// v1.2.1 never closes the client; closing it here changes nothing the
	// host can observe (the session is over) and avoids leaking a socket per
	// resource in a long-lived provider process.
	defer client.Close()

	session, err := client.NewSession()
	if err != nil {
		return err
	}
	defer session.Close()

	for name, value := range c.Environment {
		if err := session.Setenv(name, value); err != nil {
			return setenvRefused(ctx, diag.Error, name, err)
		}
	}
	if c.AddPreviousOutputInEnv == nil || *c.AddPreviousOutputInEnv {
		// Best effort: a server without AcceptEnv refuses, which only warns.
		if c.Stdout != "" {
			if err := session.Setenv(previousStdoutEnv, c.Stdout); err != nil {
				_ = setenvRefused(ctx, diag.Warning, previousStdoutEnv, err)
			}
		}
		if c.Stderr != "" {
			if err := session.Setenv(previousStderrEnv, c.Stderr); err != nil {
				_ = setenvRefused(ctx, diag.Warning, previousStderrEnv, err)
			}
		}
	}

	// With no stdin the session sends EOF at once; with stdin the text is
	// written and then EOF.
	if c.Stdin != nil && *c.Stdin != "" {
		session.Stdin = strings.NewReader(*c.Stdin)
	}

	var stdout, stderr, combined bytes.Buffer
	logReader, logWriter := io.Pipe()
	outWriters := []io.Writer{&stdout, &combined}
	if logging.streamsStdout() {
		outWriters = append(outWriters, logWriter)
	}
	errWriters := []io.Writer{&stderr, &combined}
	if logging.streamsStderr() {
		errWriters = append(errWriters, logWriter)
	}
	session.Stdout = io.MultiWriter(outWriters...)
	session.Stderr = io.MultiWriter(errWriters...)

	logged := make(chan struct{})
	go streamLines(ctx, logReader, logged)

	err = session.Run(cmd)
	_ = logWriter.Close()
	<-logged

	if err != nil {
		return fmt.Errorf("%w: running %q:\n%s", err, cmd, combined.String())
	}
	c.BaseOutputs = BaseOutputs{
		Stdout: strings.TrimSuffix(stdout.String(), "\n"),
		Stderr: strings.TrimSuffix(stderr.String(), "\n"),
	}
	return nil
}

// streamLines sends every line of r to the engine as an info status message
// (shown in the progress column; the CLI's non-interactive output prints it).
func streamLines(ctx context.Context, r io.Reader, done chan<- struct{}) {
	defer close(done)
	logger := p.GetLogger(ctx)
	scanner := bufio.NewScanner(r)
	for scanner.Scan() {
		logger.InfoStatus(scanner.Text())
	}
	// A line longer than the scanner's buffer stops the scan; drain the rest
	// so the command's writers never block on the pipe.
	_, _ = io.Copy(io.Discard, r)
}

// setenvRefused logs (at the given severity) and returns the error of a
// refused SSH `env` request, with v1.2.1's texts.
func setenvRefused(ctx context.Context, severity diag.Severity, name string, err error) error {
	msg := fmt.Sprintf("Unable to set '%s'. This only works if your SSH server is configured to accept\n"+
		"\tthese variables via AcceptEnv. Alternatively, if a Bash-like shell runs the command on the remote host, "+
		"you could\n\tprefix the command itself with the variables in the form 'VAR=value command'", name)
	logger := p.GetLogger(ctx)
	if severity == diag.Error {
		logger.Error(msg)
	} else {
		logger.Warning(msg)
	}
	return fmt.Errorf("could not set environment variable %q: %w", name, err)
}
