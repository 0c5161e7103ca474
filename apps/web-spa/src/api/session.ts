/**
 * Who is signed in: a demo user's access token from the demo identity provider, kept in
 * sessionStorage (this tab only, gone when it closes) and sent to the BFF as a bearer token.
 */
import { useSyncExternalStore } from 'react'
import { IDENTITY_URL } from '../config'

export interface DemoUser {
  user: string
  name: string
}

export interface Session {
  user: string
  name: string
  token: string
  /** when the token expires, in milliseconds since the epoch */
  expiresAt: number
}

const STORAGE_KEY = 'web-spa.session'

function storage(): Storage | null {
  try {
    return typeof window === 'undefined' ? null : window.sessionStorage
  } catch {
    return null // storage disabled: the session lives in memory only
  }
}

function load(): Session | null {
  try {
    const text = storage()?.getItem(STORAGE_KEY)
    if (!text) return null
    const session = JSON.parse(text) as Session
    return typeof session.token === 'string' && session.expiresAt > Date.now() ? session : null
  } catch {
    return null
  }
}

let current: Session | null = load()
const listeners = new Set<() => void>()

function publish(session: Session | null) {
  current = session
  const store = storage()
  if (session) store?.setItem(STORAGE_KEY, JSON.stringify(session))
  else store?.removeItem(STORAGE_KEY)
  for (const listener of listeners) listener()
}

/** The session, or `null` when nobody is signed in or the token has expired. */
export function currentSession(): Session | null {
  if (current && current.expiresAt <= Date.now()) publish(null)
  return current
}

export function signOut(): void {
  publish(null)
}

/** Whether this build can sign in at all (the BFF runs with identity). */
export const CAN_SIGN_IN = IDENTITY_URL !== null

export async function demoUsers(): Promise<DemoUser[]> {
  const response = await fetch(`${IDENTITY_URL}/identity/users`)
  if (!response.ok) throw new Error(`GET /identity/users: ${response.status}`)
  return (await response.json()) as DemoUser[]
}

interface TokenAnswer {
  access_token: string
  expires_in: number
  user: string
  name: string
}

/** Sign in as a demo user: a token minted for web-bff. */
export async function signIn(user: string): Promise<Session> {
  // A form body: a "simple" request that needs no CORS preflight.
  const response = await fetch(`${IDENTITY_URL}/identity/token`, {
    method: 'POST',
    body: new URLSearchParams({ user, audience: 'web-bff' }),
  })
  if (!response.ok) throw new Error(`POST /identity/token: ${response.status}`)
  const answer = (await response.json()) as TokenAnswer
  const session: Session = {
    user: answer.user,
    name: answer.name,
    token: answer.access_token,
    // A little early, so a request is not sent with a token about to expire on its way.
    expiresAt: Date.now() + Math.max(0, answer.expires_in - 10) * 1000,
  }
  publish(session)
  return session
}

function subscribe(onChange: () => void) {
  listeners.add(onChange)
  return () => {
    listeners.delete(onChange)
  }
}

// Pure, as a snapshot must be: an expired token is dropped when it would be sent (currentSession).
const snapshot = () => current

export function useSession(): Session | null {
  return useSyncExternalStore(subscribe, snapshot, () => null)
}
