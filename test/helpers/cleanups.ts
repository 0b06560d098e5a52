/**
 * Runs what a test started in reverse, every step even when one fails, then throws the first
 * error: for `afterAll`/`afterEach` of files that push an undo step for each thing they start.
 */
export async function undoAll(cleanups: (() => unknown)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length) throw errors[0];
}
