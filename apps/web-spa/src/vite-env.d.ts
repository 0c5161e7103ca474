/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** web-bff's base URL, e.g. `https://bff.shop.example` (default `http://127.0.0.1:8001`) */
  readonly VITE_BFF_URL?: string
}

interface ImportMeta {
  readonly env: ImportMetaEnv
}

interface Window {
  /** web-bff's base URL, when the server's `/config.js` sets it (see public/config.js) */
  BFF_URL?: string
}
