import { afterEach, describe, expect, it, vi } from 'vitest'

describe('BFF_URL', () => {
  afterEach(() => {
    delete window.BFF_URL
    vi.resetModules()
  })

  it('is the demo’s address by default', async () => {
    const { BFF_URL } = await import('./config')
    expect(BFF_URL).toBe('http://127.0.0.1:8001')
  })

  it('is what the server’s config.js sets, without a trailing slash', async () => {
    window.BFF_URL = 'http://127.0.0.1:18001/'
    const { BFF_URL } = await import('./config')
    expect(BFF_URL).toBe('http://127.0.0.1:18001')
  })
})
