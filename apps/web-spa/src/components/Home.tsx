import { useSession } from '../api/session'
import type { HomePage } from '../api/types'
import { homeUrl, HOME_PICKS } from '../api/urls'
import { CATEGORIES } from '../categories'
import { useAggregateStream } from '../hooks/useAggregateStream'
import { href } from '../router'
import { ErrorState } from './ErrorState'
import { TileList } from './TileList'

/**
 * The shop's front page: its categories, and the picks of `/api/aggregated/home` as tiles: the
 * signed-in user's recommendations ("Recommended for you"), the best sellers for anyone else.
 * The request carries the user's token, so signing in or out asks again.
 */
export function Home() {
  const session = useSession()
  const stream = useAggregateStream<HomePage>(homeUrl(), { token: session?.token ?? null })
  // Until the BFF says whose picks they are, the heading follows who is signed in.
  const picks = stream.view.picks ?? (session ? 'personal' : 'best_sellers')
  return (
    <section className="page home" data-testid="home-page" data-status={stream.status}>
      <header className="hero">
        <h1>Everything for the way you live</h1>
        <p className="muted">
          Each page is one request to the web BFF, streamed: the product first, its price, stock
          and reviews as they arrive.
        </p>
      </header>
      <ul className="category-cards" aria-label="Categories">
        {CATEGORIES.map((category) => (
          <li key={category.slug}>
            <a className={`category-card category-card--${category.slug}`} href={href.category(category.slug)}>
              <span className="category-card__name">{category.name}</span>
              <span className="category-card__cta">Browse →</span>
            </a>
          </li>
        ))}
      </ul>
      <section
        className="home-picks"
        aria-labelledby="home-picks-title"
        data-testid="home-picks"
        data-picks={stream.view.picks}
        data-status={stream.status}
      >
        <header className="page-header">
          <h2 className="home-picks__title" id="home-picks-title" data-testid="home-picks-title">
            {picks === 'personal' ? 'Recommended for you' : 'Best sellers'}
          </h2>
          <p className="muted">
            {picks === 'personal'
              ? `Picked for ${session?.name ?? 'you'} from what you browse.`
              : 'What everyone buys most. Sign in for picks of your own.'}
          </p>
        </header>
        {stream.status === 'error' && stream.view.items === undefined && stream.problem ? (
          <ErrorState problem={stream.problem} subject="Recommendations" onRetry={stream.retry} heading="h2" />
        ) : (
          <TileList stream={stream} empty="Nothing to recommend yet." testId="home-grid" skeletons={HOME_PICKS} />
        )}
      </section>
    </section>
  )
}
