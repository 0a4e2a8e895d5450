/**
 * The end every host-runner script shares (the scripts a netns test runs in a namespace with
 * `node --import tsx -e`): stop on SIGTERM or when the test closes stdin, closing the host first,
 * then say READY. The script must have `host` (from openHost) and `rl` (readline on stdin) in scope.
 */
export const RUNNER_STOP_AND_READY = `
let closing = false;
const stop = async () => {
  if (closing) return;
  closing = true;
  await host.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
rl.on('close', stop);
process.stdout.write('READY\\n');
`;
