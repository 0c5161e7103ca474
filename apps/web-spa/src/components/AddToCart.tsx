import { CAN_SIGN_IN, useSession } from '../api/session'
import { quantityOf, useCart } from '../cart'
import { href } from '../router'
import { ProblemBanner } from './ProblemBanner'

/** "Add to cart" on a product page: one more of it in the signed-in user's cart. */
export function AddToCart({ productId }: { productId: string }) {
  const session = useSession()
  const { cart, pending, add, problem } = useCart()
  if (!CAN_SIGN_IN) return null // the BFF runs without identity: nothing can be bought
  if (!session) {
    return <p className="add-to-cart muted">Sign in to add this to a cart.</p>
  }
  const inCart = quantityOf(cart, productId)
  const busy = pending.has(productId) || cart === null
  return (
    <div className="add-to-cart">
      <button
        type="button"
        className="button"
        disabled={busy}
        onClick={() => void add(productId)}
        data-testid="add-to-cart"
      >
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
