import { useCart } from '../cart'
import { href } from '../router'

/** After "Place order": the order's number and lines (as placed in this tab). */
export function OrderConfirmation({ id }: { id: string }) {
  const { lastOrder } = useCart()
  const order = lastOrder?.id === id ? lastOrder : null
  return (
    <section className="page order-page" data-testid="order-page" data-status="done">
      <h1>Thank you for your order</h1>
      <p>
        Order <strong data-testid="order-id">{id}</strong>
        {order && (
          <>
            {' '}
            is <span data-testid="order-status">{order.status}</span>
          </>
        )}
        . Your cart is empty again.
      </p>
      {order && (
        <ul className="order-lines" data-testid="order-lines">
          {order.items.map((item) => (
            <li key={item.product_id}>
              <a href={href.product(item.product_id)}>{item.product_id}</a> × {item.quantity}
            </li>
          ))}
        </ul>
      )}
      <p>
        <a className="button button--quiet" href={href.home()}>
          Back to the shop
        </a>{' '}
        <a className="button button--quiet" href={href.cart()}>
          Your cart
        </a>
      </p>
    </section>
  )
}
