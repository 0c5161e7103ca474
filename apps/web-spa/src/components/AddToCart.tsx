import { useState } from 'react'
import { CAN_SIGN_IN, useSession } from '../api/session'
import { quantityOf, useCart } from '../cart'
import { href } from '../router'
import { ProblemBanner } from './ProblemBanner'

interface AddToCartProps {
  productId: string
  /** the product's name, for the tile's button's accessible name (`Add to cart: …`) */
  name?: string
  /** on a tile (one of many on a page): small, and only its own failure shown */
  compact?: boolean
}

/**
 * "Add to cart": one more of a product in the signed-in user's cart, on a product page or a
 * tile. Signed out it asks to sign in; without identity (nothing can be bought) it is absent.
 */
export function AddToCart({ productId, name, compact = false }: AddToCartProps) {
  const session = useSession()
  const { cart, pending, add, problem } = useCart()
  // On a tile, the cart's problem is shown by the tile whose add failed only (not by all 24).
  const [failedHere, setFailedHere] = useState(false)
  if (!CAN_SIGN_IN) return null // the BFF runs without identity: nothing can be bought
  if (!session) {
    return compact ? (
      <p className="tile__buy muted" data-testid={`sign-in-to-buy-${productId}`}>
        Sign in to add to a cart
      </p>
    ) : (
      <p className="add-to-cart muted">Sign in to add this to a cart.</p>
    )
  }
  const inCart = quantityOf(cart, productId)
  const busy = pending.has(productId) || cart === null
  const onAdd = async () => {
    setFailedHere(false)
    setFailedHere(!(await add(productId)))
  }
  if (compact) {
    return (
      <div className="tile__buy">
        <button
          type="button"
          className="button button--small"
          disabled={busy}
          aria-label={name ? `Add to cart: ${name}` : undefined}
          onClick={() => void onAdd()}
          data-testid={`add-to-cart-${productId}`}
        >
          Add to cart
        </button>
        <span aria-live="polite">
          {inCart > 0 && (
            <a className="tile__in-cart muted" href={href.cart()} data-testid={`in-cart-${productId}`}>
              {inCart} in cart
            </a>
          )}
        </span>
        {failedHere && problem && <ProblemBanner problem={problem} testId={`cart-problem-${productId}`} />}
      </div>
    )
  }
  return (
    <div className="add-to-cart">
      <button type="button" className="button" disabled={busy} onClick={() => void onAdd()} data-testid="add-to-cart">
        Add to cart
      </button>
      {inCart > 0 && (
        <a className="muted" href={href.cart()} data-testid="in-cart">
          {inCart} in your cart
        </a>
      )}
      {problem && <ProblemBanner problem={problem} testId="cart-problem" />}
    </div>
  )
}
