"""pms-secrets host agent: delivers one env file to one host and restarts its services.

Runs as root on the target host, started by the bash bootstrap (agent/bootstrap.sh) that the
program sends on stdin together with this package and the env file. Standard library only.
"""
