import { CATEGORIES } from '../categories'
import { href } from '../router'

/** The shop's front page: its categories. */
export function Home() {
  return (
    <section className="page home" data-testid="home-page" data-status="done">
      <header className="hero">
        <h1>Everything for the way you live</h1>
        <p className="muted">
          Each page is one request to the web BFF, streamed: the product first, its price, stock
          and reviews as they arrive.
        </p>
      </header>
      <ul className="category-cards">
        {CATEGORIES.map((category) => (
          <li key={category.slug}>
            <a className={`category-card category-card--${category.slug}`} href={href.category(category.slug)}>
              <span className="category-card__name">{category.name}</span>
              <span className="category-card__cta">Browse →</span>
            </a>
          </li>
        ))}
      </ul>
    </section>
  )
}
