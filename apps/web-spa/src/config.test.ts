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

describe('IDENTITY_URL', () => {
  afterEach(() => {
    delete window.IDENTITY_URL
    vi.resetModules()
  })

  it('is the demo’s address by default', async () => {
    const { IDENTITY_URL } = await import('./config')
    expect(IDENTITY_URL).toBe('http://127.0.0.1:9000')
  })

  it('is what the server’s config.js sets, without a trailing slash', async () => {
    window.IDENTITY_URL = 'http://127.0.0.1:19000/'
    const { IDENTITY_URL } = await import('./config')
    expect(IDENTITY_URL).toBe('http://127.0.0.1:19000')
  })

  it('is null when the server says the BFF runs without identity', async () => {
    window.IDENTITY_URL = null
    const { IDENTITY_URL } = await import('./config')
    expect(IDENTITY_URL).toBeNull()
  })
})
