import { useEffect } from 'react'
import './App.css'
import { CartProvider } from './cart'
import { CATEGORIES } from './categories'
import { Account } from './components/Account'
import { CartView } from './components/CartView'
import { CategoryGrid } from './components/CategoryGrid'
import { Home } from './components/Home'
import { NotFound } from './components/NotFound'
import { OrderConfirmation } from './components/OrderConfirmation'
import { ProductPage } from './components/ProductPage'
import { href, useHashRoute, type Route } from './router'

function Page({ route }: { route: Route }) {
  switch (route.name) {
    case 'home':
      return <Home />
    case 'category':
      return <CategoryGrid key={route.slug} slug={route.slug} page={route.page} />
    case 'product':
      return <ProductPage key={route.id} id={route.id} />
    case 'cart':
      return <CartView />
    case 'order':
      return <OrderConfirmation id={route.id} />
    case 'not-found':
      return <NotFound path={route.path} />
  }
}

function App() {
  const route = useHashRoute()
  const active = route.name === 'category' ? route.slug : null
  const routeKey = JSON.stringify(route)
  useEffect(() => {
    // A block, not an expression: newer browsers' scrollTo returns a promise, which React
    // would take for the effect's clean-up and call when the route changes.
    window.scrollTo?.({ top: 0 })
  }, [routeKey])
  return (
    <CartProvider>
      <div className="app">
        <header className="site-header">
          <div className="site-header__inner">
            <a className="brand" href={href.home()}>
              <img src="./favicon.svg" alt="" width="28" height="28" />
              <span>Shop</span>
            </a>
            <nav className="category-nav" aria-label="Categories">
              {CATEGORIES.map((category) => (
                <a
                  key={category.slug}
                  href={href.category(category.slug)}
                  className={category.slug === active ? 'is-active' : undefined}
                  aria-current={category.slug === active ? 'page' : undefined}
                >
                  {category.name}
                </a>
              ))}
            </nav>
            <Account />
          </div>
        </header>
        <main className="site-main">
          <Page route={route} />
        </main>
        <footer className="site-footer muted">Served by web-bff · one request per page</footer>
      </div>
    </CartProvider>
  )
}

export default App
