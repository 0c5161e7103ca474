/**
 * The signed-in user's cart, shared by the header (its count), the product pages ("Add to
 * cart") and the cart page: read once when someone signs in, and replaced by the cart every
 * `PUT` answers (the BFF answers a line's change with the whole cart, as the cart screen).
 */
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from 'react'
import type { CartPage, Order, Problem } from './api/types'
import { getCart, setCartLine } from './api/writes'
import { useSession } from './api/session'

export interface CartState {
  /** the cart as last answered; `null` before it is known (or when nobody is signed in) */
  cart: CartPage | null
  /** why the last read or change of the cart failed */
  problem: Problem | null
  /** the product ids whose line is being changed */
  pending: ReadonlySet<string>
  /** the order placed last in this tab, for its confirmation page */
  lastOrder: Order | null
  refresh: () => Promise<void>
  /** Set a line's quantity (0 removes it); `true` when the BFF took it. */
  setQuantity: (productId: string, quantity: number) => Promise<boolean>
  /** One more of a product. */
  add: (productId: string) => Promise<boolean>
  /** An order was placed: its cart is now empty. */
  ordered: (order: Order) => void
}

async function notSignedIn(): Promise<boolean> {
  return false
}

// Outside a provider (a component rendered alone in a test): nobody signed in, nothing to do.
const SIGNED_OUT: CartState = {
  cart: null,
  problem: null,
  pending: new Set(),
  lastOrder: null,
  refresh: async () => {},
  setQuantity: notSignedIn,
  add: notSignedIn,
  ordered: () => {},
}

const CartContext = createContext<CartState>(SIGNED_OUT)

export function quantityOf(cart: CartPage | null, productId: string): number {
  return cart?.lines?.find((line) => line.product_id === productId)?.quantity ?? 0
}

export function CartProvider({ children }: { children: ReactNode }) {
  const session = useSession()
  const user = session?.user ?? null
  const [cart, setCart] = useState<CartPage | null>(null)
  const [problem, setProblem] = useState<Problem | null>(null)
  const [pending, setPending] = useState<ReadonlySet<string>>(new Set())
  const [lastOrder, setLastOrder] = useState<Order | null>(null)

  const refresh = useCallback(async () => {
    const answer = await getCart()
    if (answer.ok) {
      setCart(answer.value)
      setProblem(null)
    } else {
      setProblem(answer.problem)
    }
  }, [])

  useEffect(() => {
    setCart(null)
    setProblem(null)
    if (user !== null) void refresh()
  }, [user, refresh])

  const setQuantity = useCallback(async (productId: string, quantity: number) => {
    setPending((ids) => new Set(ids).add(productId))
    try {
      const answer = await setCartLine(productId, Math.max(0, Math.min(99, quantity)))
      if (answer.ok) {
        setCart(answer.value)
        setProblem(null)
        return true
      }
      setProblem(answer.problem)
      return false
    } finally {
      setPending((ids) => {
        const left = new Set(ids)
        left.delete(productId)
        return left
      })
    }
  }, [])

  const add = useCallback(
    (productId: string) => setQuantity(productId, quantityOf(cart, productId) + 1),
    [cart, setQuantity],
  )

  const ordered = useCallback((order: Order) => {
    setLastOrder(order)
    setCart((previous) => ({ ...previous, lines: [], count: 0, total: null, priced: 0 }))
  }, [])

  const value = useMemo(
    () => ({ cart, problem, pending, lastOrder, refresh, setQuantity, add, ordered }),
    [cart, problem, pending, lastOrder, refresh, setQuantity, add, ordered],
  )
  return <CartContext.Provider value={value}>{children}</CartContext.Provider>
}

export function useCart(): CartState {
  return useContext(CartContext)
}
