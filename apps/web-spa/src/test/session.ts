/** Signing in and out in a test: the demo identity provider's token answer, faked by `fetch`. */
import { afterEach } from 'vitest'
import { signOut } from '../api/session'
import { jsonResponse } from './streams'

/** The token the fake provider mints for `user`. */
export const tokenOf = (user: string) => `token-of-${user}`

/**
 * The identity provider's answer to `POST /identity/token` (so `signIn(user)` works), or `null`
 * for another URL.
 */
export function identityAnswer(url: string, init: RequestInit): Response | null {
  if (!url.endsWith('/identity/token')) return null
  const user = new URLSearchParams(String(init.body)).get('user') ?? ''
  const name = user.charAt(0).toUpperCase() + user.slice(1)
  return jsonResponse({ access_token: tokenOf(user), expires_in: 900, user, name })
}

/** The session is the module's and the tab's: each test starts signed out. */
export function signOutAfterEach(): void {
  afterEach(() => signOut())
}

/** The `Authorization` header a request carried, if any. */
export function authorizationOf(init: RequestInit): string | undefined {
  return new Headers(init.headers).get('authorization') ?? undefined
}
