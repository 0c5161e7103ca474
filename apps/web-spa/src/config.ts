/**
 * Where web-bff answers: `window.BFF_URL` when the server's `/config.js` sets it (so one build
 * serves any address), else `VITE_BFF_URL` at build time, else the demo's address.
 */
const runtime = typeof window === 'undefined' ? undefined : window.BFF_URL

export const BFF_URL: string = (
  runtime ||
  import.meta.env.VITE_BFF_URL ||
  'http://127.0.0.1:8001'
).replace(/\/+$/, '')

/**
 * Where the demo identity provider answers (`/identity/users`, `/identity/token`):
 * `window.IDENTITY_URL` when `/config.js` sets it (`null`: the BFF runs without identity, so
 * there is no signing in), else `VITE_IDENTITY_URL` at build time, else the demo's address.
 */
const identityRuntime = typeof window === 'undefined' ? undefined : window.IDENTITY_URL

export const IDENTITY_URL: string | null =
  identityRuntime === null
    ? null
    : (identityRuntime || import.meta.env.VITE_IDENTITY_URL || 'http://127.0.0.1:9000').replace(
        /\/+$/,
        '',
      )
