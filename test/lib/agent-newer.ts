/**
 * `agent run --config FILE` as a "newer" agent would run it: every record it signs carries one
 * protobuf field (100) this build has no schema for, appended to the signed body. Used by the
 * mixed-version cluster test (test/agent-cluster.test.ts) through AgentCluster's `newer` hosts.
 *
 *   node --conditions=source --import tsx test/lib/agent-newer.ts --config FILE
 */
import { loadConfig, runAgent } from '@overlay/agent';

/** Field 100, a string: what a newer release might add to RecordBody. Tag (100 << 3 | 2) = varint a2 06. */
export function newerRecordField(): Uint8Array {
  const text = Buffer.from('added-by-a-newer-agent');
  return Uint8Array.from([0xa2, 0x06, text.length, ...text]);
}

const i = process.argv.indexOf('--config');
if (i > 0) {
  const { stop } = await runAgent(loadConfig(process.argv[i + 1]), undefined, { recordExtension: newerRecordField() });
  const onSig = () => void stop().then(() => process.exit(0));
  process.once('SIGTERM', onSig);
  process.once('SIGINT', onSig);
}
