import { useState } from 'react'
import { CAN_SIGN_IN, demoUsers, signIn, signOut, useSession, type DemoUser } from '../api/session'
import { useCart } from '../cart'
import { formatCount, itemCount } from '../format'
import { href } from '../router'

/** The header's corner: the cart and its count, who is signed in, or a demo user picker. */
export function Account() {
  const session = useSession()
  if (!CAN_SIGN_IN) return null
  return (
    <div className="account" data-testid="account">
      {session ? (
        <>
          <CartLink />
          <span className="account__user muted" data-testid="signed-in-as">
            {session.name}
          </span>
          <button type="button" className="button button--small button--quiet" onClick={signOut}>
            Sign out
          </button>
        </>
      ) : (
        <SignInPicker />
      )}
    </div>
  )
}

function CartLink() {
  const { cart } = useCart()
  const count = itemCount(cart?.lines)
  return (
    <a className="cart-link" href={href.cart()} data-testid="cart-link">
      Cart{' '}
      <span className="cart-link__count" data-testid="cart-count" aria-label={`${count} in the cart`}>
        {cart ? formatCount(count) : '…'}
      </span>
    </a>
  )
}

function SignInPicker() {
  const [open, setOpen] = useState(false)
  const [users, setUsers] = useState<DemoUser[] | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)

  async function toggle() {
    const opening = !open
    setOpen(opening)
    setError(null)
    if (opening && users === null) {
      try {
        setUsers(await demoUsers())
      } catch (failure) {
        setError(`Could not list the demo users: ${String(failure)}`)
      }
    }
  }

  async function choose(user: string) {
    setBusy(true)
    setError(null)
    try {
      await signIn(user)
      setOpen(false)
    } catch (failure) {
      setError(`Could not sign in: ${String(failure)}`)
    } finally {
      setBusy(false)
    }
  }

  return (
    <div className="sign-in">
      <button type="button" className="button button--small" onClick={toggle} aria-expanded={open} data-testid="sign-in">
        Sign in
      </button>
      {open && (
        <div className="sign-in__picker" role="dialog" aria-label="Sign in as a demo user">
          <p className="muted">Sign in as a demo user:</p>
          {users === null && !error && <p className="muted">Loading…</p>}
          {users && (
            <ul>
              {users.map((user) => (
                <li key={user.user}>
                  <button
                    type="button"
                    className="button button--quiet button--small"
                    disabled={busy}
                    onClick={() => void choose(user.user)}
                    data-testid={`sign-in-${user.user}`}
                  >
                    {user.name}
                  </button>
                </li>
              ))}
            </ul>
          )}
          {error && (
            <p className="error-text" role="alert">
              {error}
            </p>
          )}
        </div>
      )}
    </div>
  )
}
