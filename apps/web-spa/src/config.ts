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
