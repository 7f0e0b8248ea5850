/**
 * Boot test hosts by hand and keep them up until Ctrl-C, for poking at them while writing tests:
 *
 *   node --import tsx test/host/up.ts web1 web2
 *
 * Prints an ssh command and the HTTP address of every host; Ctrl-C tears everything down.
 */
import { bootFleet } from "./testhost";

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  if (names.length === 0) names.push("web1");
  const t0 = Date.now();
  const fleet = await bootFleet(names, (line) => process.stderr.write(`${line}\n`));
  process.stdout.write(`booted ${names.length} host(s) in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
  for (const h of fleet.hosts) {
    process.stdout.write(
      `${h.name}: ssh -i ${fleet.privateKeyPath} -o UserKnownHostsFile=${h.knownHostsFile} -p ${h.sshPort} root@${h.address}\n` +
        `${" ".repeat(h.name.length)}  http://${h.address}:${h.httpPort}/health/\n`,
    );
  }
  process.stdout.write("Ctrl-C tears the hosts down.\n");
  await new Promise(() => setInterval(() => {}, 1 << 30)); // until a signal ends the process
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
