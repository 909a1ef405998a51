// The benchmark's upstream: the repository's mock Messages API (test/helpers/mock-anthropic.ts, compiled),
// in its own process. Prints one JSON line {"url": ...} once listening; exits on SIGTERM.
import { startMockAnthropic } from '../../dist/test/helpers/mock-anthropic.js';

const mock = await startMockAnthropic({ uniqueIds: true, keepBodyBytes: 0 });
process.stdout.write(JSON.stringify({ url: mock.url, pid: process.pid }) + '\n');
const stop = async () => {
  await mock.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
