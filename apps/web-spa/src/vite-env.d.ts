/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** web-bff's base URL, e.g. `https://bff.shop.example` (default `http://127.0.0.1:8001`) */
  readonly VITE_BFF_URL?: string
  /** the demo identity provider's base URL (default `http://127.0.0.1:9000`) */
  readonly VITE_IDENTITY_URL?: string
}

interface ImportMeta {
  readonly env: ImportMetaEnv
}

interface Window {
  /** web-bff's base URL, when the server's `/config.js` sets it (see public/config.js) */
  BFF_URL?: string
  /** the identity provider's base URL, or `null` when the BFF runs without identity */
  IDENTITY_URL?: string | null
}
