package remote

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/retry"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// agentSocketEnv is read from the provider's own environment (the engine passes
// the CLI's environment to plugins), so an operator's agent is used without
// the program asking for it: v1.2.1 behaves this way and so must we.
const agentSocketEnv = "SSH_AUTH_SOCK"

// clientConfig builds the SSH client configuration exactly as v1.2.1 does:
//   - hostKey set: only that key is accepted and ONLY its algorithm
//     (publicKey.Type()) is offered, so a pinned RSA key negotiates `ssh-rsa`
//     (SHA-1), which OpenSSH >= 8.8 refuses by default. Unset: anything goes.
//   - perDialTimeout becomes ssh.ClientConfig.Timeout, which x/crypto applies to
//     the TCP connect only; the SSH handshake itself is unbounded.
//   - auth methods in order: private key, password + keyboard-interactive,
//     agent (explicit agentSocketPath, else $SSH_AUTH_SOCK). An agent socket
//     that cannot be dialled fails the whole run at once, without retries.
func (c *connectionBase) clientConfig() (*ssh.ClientConfig, error) {
	cfg := &ssh.ClientConfig{
		//nolint:gosec // v1.2.1 skips host key checks when no hostKey is pinned.
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	}
	if c.User != nil {
		cfg.User = *c.User
	}
	if c.PerDialTimeout != nil {
		cfg.Timeout = time.Duration(*c.PerDialTimeout) * time.Second
	}
	if c.HostKey != nil {
		pinned, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*c.HostKey))
		if err != nil {
			return nil, fmt.Errorf("failed to parse host key: %w", err)
		}
		cfg.HostKeyCallback = ssh.FixedHostKey(pinned)
		cfg.HostKeyAlgorithms = []string{pinned.Type()}
	}

	if c.PrivateKey != nil {
		var signer ssh.Signer
		var err error
		if c.PrivateKeyPassword != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.PrivateKey), []byte(*c.PrivateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.PrivateKey))
		}
		if err != nil {
			return nil, err
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeys(signer))
	}
	if c.Password != nil {
		password := *c.Password
		cfg.Auth = append(cfg.Auth,
			ssh.Password(password),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = password
				}
				return answers, nil
			}))
	}

	socket := ""
	if c.AgentSocketPath != nil {
		socket = *c.AgentSocketPath
	} else if env := os.Getenv(agentSocketEnv); env != "" {
		socket = env
	}
	// An explicitly empty agentSocketPath is still dialled, as upstream does
	// (it only falls back to the environment when the input is absent).
	if c.AgentSocketPath != nil || socket != "" {
		conn, err := net.Dial("unix", socket)
		if err != nil {
			return nil, err
		}
		// The connection stays open for the life of the process, like upstream:
		// the agent is asked for signers during every handshake attempt.
		cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	return cfg, nil
}

// dialErrorLimit returns the configured limit, 10 when unset.
func (c *connectionBase) dialErrorLimit() int {
	if c.DialErrorLimit == nil {
		return defaultDialErrorLimit
	}
	return *c.DialErrorLimit
}

// endpoint is host:port; the port defaults to 22 when Check did not run.
func (c *connectionBase) endpoint() string {
	port := defaultPort
	if c.Port != nil {
		port = int(*c.Port)
	}
	host := ""
	if c.Host != nil {
		host = *c.Host
	}
	return net.JoinHostPort(host, fmt.Sprintf("%d", port))
}

// exhausted reports whether `dials` attempts used up a limit of `limit` errors:
// a limit N gives up after N+1 failed attempts; -1 never gives up.
func exhausted(dials, limit int) bool {
	return limit > unlimitedDialErrors && dials > limit
}

// withDialRetries calls attempt until it succeeds or the error limit is
// passed, with the SDK's retry schedule (100ms, x1.5, at most 5s between
// attempts). EVERY error is retried: refused connections, timeouts,
// authentication failures and host key mismatches alike. Between attempts a
// status line "<what> k/N failed: retrying" goes to the engine. The final error
// says "after N failed attempts" where N is the zero-based index of the last
// attempt, i.e. one less than the attempts made: that is v1.2.1's wording.
func withDialRetries[T any](ctx context.Context, what string, limit int, attempt func() (T, error)) (T, error) {
	var zero T
	ok, result, err := retry.Until(ctx, retry.Acceptor{
		Accept: func(try int, _ time.Duration) (bool, any, error) {
			value, attemptErr := attempt()
			if attemptErr == nil {
				return true, value, nil
			}
			dials := try + 1
			if exhausted(dials, limit) {
				return true, nil, fmt.Errorf("after %d failed attempts: %w", try, attemptErr)
			}
			shown := "inf"
			if limit != unlimitedDialErrors {
				shown = fmt.Sprintf("%d", limit)
			}
			p.GetLogger(ctx).InfoStatusf("%s %d/%s failed: retrying", what, dials, shown)
			return false, nil, nil
		},
	})
	if ok && err == nil {
		return result.(T), nil
	}
	if err == nil {
		// retry.Until reports a cancelled context as (false, nil, nil).
		err = ctx.Err()
	}
	return zero, err
}

// dial opens the SSH client, through the proxy when one is configured.
func (c *Connection) dial(ctx context.Context) (*ssh.Client, error) {
	cfg, err := c.clientConfig()
	if err != nil {
		return nil, err
	}
	target := c.endpoint()
	limit := c.dialErrorLimit()
	if c.Proxy == nil {
		return withDialRetries(ctx, "Dial", limit, func() (*ssh.Client, error) {
			return ssh.Dial("tcp", target, cfg)
		})
	}

	proxyCfg, err := c.Proxy.clientConfig()
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	proxyEndpoint := c.Proxy.endpoint()
	bastion, err := withDialRetries(ctx, "Dial proxy", c.Proxy.dialErrorLimit(), func() (*ssh.Client, error) {
		return ssh.Dial("tcp", proxyEndpoint, proxyCfg)
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	// A TCP stream from the bastion to the target (direct-tcpip channel).
	tunnel, err := withDialRetries(ctx, "Dial from proxy", limit, func() (net.Conn, error) {
		return bastion.Dial("tcp", target)
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	// The SSH handshake with the target runs over that one stream. As in
	// v1.2.1, a failed handshake is retried on the same stream.
	var chans <-chan ssh.NewChannel
	var reqs <-chan *ssh.Request
	conn, err := withDialRetries(ctx, "Dial", limit, func() (ssh.Conn, error) {
		conn, newChans, newReqs, err := ssh.NewClientConn(tunnel, target, cfg)
		chans, reqs = newChans, newReqs
		return conn, err
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	return ssh.NewClient(conn, chans, reqs), nil
}
