/**
 * Worker entry of `TranscodePool` (`transcode_pool.ts`): runs `transcode` off the replica's
 * event loop. Each message is `{id, input, options}`; the answer is `{id, result}` (the encoded
 * bytes transferred, not copied) or `{id, error: {name, message}}`.
 *
 * @module
 */
import { transcode, type TranscodeOptions } from "./pipeline.ts";

interface Job {
  id: number;
  input: Uint8Array;
  options: TranscodeOptions;
}

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<Job>) => void) | null;
  postMessage: (message: unknown, transfer?: Transferable[]) => void;
};

scope.onmessage = async (e) => {
  const { id, input, options } = e.data;
  try {
    const result = await transcode(input, options);
    const bytes = result.bytes.slice(); // its own buffer, so it can be transferred
    scope.postMessage({ id, result: { ...result, bytes } }, [bytes.buffer]);
  } catch (err) {
    const { name, message } = err instanceof Error ? err : new Error(String(err));
    scope.postMessage({ id, error: { name, message } });
  }
};
