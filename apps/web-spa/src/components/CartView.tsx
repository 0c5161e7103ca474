import { useRef, useState } from 'react'
import { AttemptKeys } from '../api/attempt'
import { useSession } from '../api/session'
import type { CartPage, CartPageLine, Problem } from '../api/types'
import { placeOrder } from '../api/writes'
import { useCart } from '../cart'
import { formatItems, formatPrice, formatTotal, itemCount, lineTotal, salePrice } from '../format'
import { href } from '../router'
import { ProblemBanner } from './ProblemBanner'
import { ProductImage } from './ProductImage'

/** What an order attempt is about: the cart it orders. Another cart is another attempt. */
function orderScope(cart: CartPage): string[] {
  return (cart.lines ?? []).map((line) => `${line.product_id}:${line.quantity}`)
}

/** The cart page: the lines, their quantities and prices, the total, and "Place order". */
export function CartView() {
  const session = useSession()
  const { cart, problem, refresh, ordered } = useCart()
  const [placing, setPlacing] = useState(false)
  const [orderProblem, setOrderProblem] = useState<Problem | null>(null)
  // One key per attempt, kept across its retries (a double click, a retry after the network
  // failed), so that however many requests an attempt sends, one order is placed.
  const keys = useRef(new AttemptKeys())
  const running = useRef(false)

  if (!session) {
    return (
      <section className="page cart-page" data-testid="cart-page" data-status="signed-out">
        <h1>Your cart</h1>
        <p className="muted">Sign in (top right) to see your cart.</p>
      </section>
    )
  }
  if (cart === null) {
    return (
      <section className="page cart-page" data-testid="cart-page" data-status={problem ? 'error' : 'loading'}>
        <h1>Your cart</h1>
        {problem ? (
          <ProblemBanner problem={problem} onRetry={() => void refresh()} testId="cart-problem" />
        ) : (
          <p className="muted">Loading…</p>
        )}
      </section>
    )
  }

  const lines = cart.lines ?? []

  async function place(current: CartPage) {
    // The button is disabled while an order runs; this also stops a second click that lands
    // before the page has re-rendered.
    if (running.current) return
    running.current = true
    setPlacing(true)
    setOrderProblem(null)
    const answer = await placeOrder(keys.current.keyFor(orderScope(current)))
    keys.current.settle(answer.status)
    running.current = false
    setPlacing(false)
    if (answer.ok) {
      ordered(answer.value)
      void refresh() // the cart as the BFF now has it: empty
      window.location.hash = href.order(answer.value.id)
    } else {
      setOrderProblem(answer.problem)
    }
  }

  return (
    <section className="page cart-page" data-testid="cart-page" data-status="done">
      <h1>Your cart</h1>
      {problem && <ProblemBanner problem={problem} onRetry={() => void refresh()} retryLabel="Reload" testId="cart-problem" />}
      {lines.length === 0 ? (
        <p className="muted" data-testid="cart-empty">
          Your cart is empty. <a href={href.home()}>Back to the shop</a>
        </p>
      ) : (
        <>
          <ul className="cart-lines" data-testid="cart-lines">
            {lines.map((line) => (
              <CartLineRow key={line.product_id} line={line} />
            ))}
          </ul>
          <div className="cart-summary" data-testid="cart-summary">
            <p>
              <span className="muted">{formatItems(itemCount(lines))}</span>{' '}
              <strong className="cart-summary__total" data-testid="cart-total">
                {formatTotal(cart.total)}
              </strong>
            </p>
            {cart.priced !== undefined && cart.priced < lines.length && (
              <p className="muted" role="status">
                {lines.length - cart.priced} of the lines have no price now: the total leaves them out.
              </p>
            )}
            {orderProblem && (
              <ProblemBanner problem={orderProblem} onRetry={() => void place(cart)} testId="order-problem" />
            )}
            <button
              type="button"
              className="button"
              disabled={placing}
              onClick={() => void place(cart)}
              data-testid="place-order"
            >
              {placing ? 'Placing the order…' : 'Place order'}
            </button>
          </div>
        </>
      )}
    </section>
  )
}

function CartLineRow({ line }: { line: CartPageLine }) {
  const { pending, setQuantity } = useCart()
  const busy = pending.has(line.product_id)
  const tile = line.product
  const name = tile?.name ?? line.product_id
  return (
    <li className="cart-line" data-testid={`cart-line-${line.product_id}`}>
      <ProductImage src={tile?.image} alt={name} className="cart-line__image" />
      <div className="cart-line__body">
        <a className="cart-line__name" href={href.product(line.product_id)}>
          {name}
        </a>
        {tile?.price ? (
          <span className="muted">
            {formatPrice(salePrice(tile.price.amount, tile.price.discount_pct), tile.price.currency)} each
          </span>
        ) : (
          <span className="muted">Price unavailable</span>
        )}
      </div>
      <div className="cart-line__quantity">
        <button
          type="button"
          className="button button--small button--quiet"
          disabled={busy || line.quantity <= 1}
          onClick={() => void setQuantity(line.product_id, line.quantity - 1)}
          aria-label={`One less ${name}`}
          data-testid={`decrease-${line.product_id}`}
        >
          −
        </button>
        <span data-testid={`quantity-${line.product_id}`} aria-label="Quantity">
          {line.quantity}
        </span>
        <button
          type="button"
          className="button button--small button--quiet"
          disabled={busy || line.quantity >= 99}
          onClick={() => void setQuantity(line.product_id, line.quantity + 1)}
          aria-label={`One more ${name}`}
          data-testid={`increase-${line.product_id}`}
        >
          +
        </button>
      </div>
      <strong className="cart-line__total" data-testid={`line-total-${line.product_id}`}>
        {tile?.price ? formatPrice(lineTotal(tile.price, line.quantity), tile.price.currency) : '—'}
      </strong>
      <button
        type="button"
        className="button button--small button--quiet"
        disabled={busy}
        onClick={() => void setQuantity(line.product_id, 0)}
        data-testid={`remove-${line.product_id}`}
      >
        Remove
      </button>
    </li>
  )
}
