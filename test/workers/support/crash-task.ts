/**
 * Test-only task file: the real encode tasks, except for two stream names
 * that make the worker fail. Only tests point an EncoderPool at this file
 * (`encodeTaskUrl`); the gateway never loads it, so no wire input reaches it.
 */
import encodeTask, { encodeStreamed as realEncodeStreamed } from '../../../src/workers/encode-task.js';
import type { EncodeFailure, EncodeTask, StreamedEncodeTask } from '../../../src/workers/task-data.js';

/** The worker exits (as on a fatal native error) a little after taking the task. */
export const EXIT_STREAM = 'test-worker-exit';
/** The task throws a plain Error: a bug, not a bad row. */
export const THROW_STREAM = 'test-worker-throw';

async function failOn(stream: string): Promise<void> {
  if (stream === EXIT_STREAM) {
    await new Promise((resolve) => setTimeout(resolve, 30));
    process.exit(3);
  }
  if (stream === THROW_STREAM) throw new Error('boom in the encoder');
}

export default async function crashTask(task: EncodeTask): Promise<ArrayBuffer | EncodeFailure> {
  await failOn(task.stream);
  return encodeTask(task);
}

export async function encodeStreamed(task: StreamedEncodeTask): Promise<ArrayBuffer | EncodeFailure> {
  await failOn(task.stream);
  return realEncodeStreamed(task);
}
