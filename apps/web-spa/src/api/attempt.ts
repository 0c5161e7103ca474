/**
 * One `Idempotency-Key` per attempt of a write, kept across the retries of that attempt.
 *
 * The BFF carries out the first request with a key once and answers every later one with the
 * same answer (or 409 while the first is still running). So a double click, or a retry after
 * the network failed, must send the key of the attempt it repeats: then however many requests
 * go out, one order is placed. A new attempt (another body, or another cart to order) gets a
 * new key, and so does the one after a definite answer: reusing that key would only replay it.
 */

/** Whether the answer `status` leaves the attempt open, so that its retry keeps the key. */
export function keepsKey(status: number): boolean {
  // 0: no answer at all (the request may have reached the BFF); 409: the first request with
  // the key is still running; 5xx: failed or of unknown outcome, which the key's record
  // remembers: its retry is answered from it and never carried out twice.
  return status === 0 || status === 409 || status >= 500
}

function randomKey(): string {
  return crypto.randomUUID()
}

export class AttemptKeys {
  private current: { key: string; scope: string } | null = null
  private readonly newKey: () => string

  constructor(newKey: () => string = randomKey) {
    this.newKey = newKey
  }

  /**
   * The key to send for an attempt at `scope` (what the attempt is about: the body, and for an
   * order the cart it orders): the open attempt's key when it is about the same, else a new one.
   */
  keyFor(scope: unknown): string {
    const text = JSON.stringify(scope ?? null)
    if (this.current === null || this.current.scope !== text) {
      this.current = { key: this.newKey(), scope: text }
    }
    return this.current.key
  }

  /** The attempt was answered `status`: a definite answer closes it (the next gets a new key). */
  settle(status: number): void {
    if (!keepsKey(status)) this.current = null
  }

  /** The open attempt's key, if any (for showing or testing). */
  get openKey(): string | null {
    return this.current?.key ?? null
  }
}
