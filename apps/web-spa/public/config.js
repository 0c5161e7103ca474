// Run-time configuration, read before the app starts. A server may answer /config.js itself
// to point one build at any web-bff (the demo's does: window.BFF_URL = "http://127.0.0.1:8001")
// and at its identity provider (window.IDENTITY_URL; null: no identity, no signing in).
// Served as it is, this file sets nothing: the build's VITE_BFF_URL (or its default) applies.
