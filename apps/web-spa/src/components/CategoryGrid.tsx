import type { CategoryPage } from '../api/types'
import { categoryUrl, CATEGORY_PAGE_SIZE } from '../api/urls'
import { CATEGORIES } from '../categories'
import { formatAge, formatCount } from '../format'
import { useAggregateStream } from '../hooks/useAggregateStream'
import { href } from '../router'
import { ErrorState } from './ErrorState'
import { PartNotice } from './PartNotice'
import { ProductTile, TileSkeleton } from './ProductTile'
import { unavailableText } from './parts'

/** A page of a category's products, as tiles; a tile whose price failed says so itself. */
export function CategoryGrid({ slug, page }: { slug: string; page: number }) {
  const offset = (page - 1) * CATEGORY_PAGE_SIZE
  const stream = useAggregateStream<CategoryPage>(categoryUrl(slug, offset))
  const { view, status } = stream
  const name = view.name ?? CATEGORIES.find((c) => c.slug === slug)?.name ?? slug
  const pages = view.total === undefined ? 1 : Math.max(1, Math.ceil(view.total / CATEGORY_PAGE_SIZE))
  // Item-level failures (`items.pricing`) and stale parts, summed up over the page.
  const itemErrors = stream.errors.filter((e) => e.source.startsWith('items.'))
  const staleParts = Object.entries(stream.stale).filter(([source]) => source.startsWith('items.'))

  return (
    <section className="page category-page" data-testid="category-page" data-status={status}>
      {status === 'error' && view.items === undefined && stream.problem ? (
        <ErrorState problem={stream.problem} subject="Category" onRetry={stream.retry} />
      ) : (
        <>
          <header className="page-header">
            <nav className="breadcrumb" aria-label="Breadcrumb">
              <a href={href.home()}>Shop</a> <span aria-hidden="true">/</span> {name}
            </nav>
            <h1 className="page-header__title">{name}</h1>
            <p className="muted">
              {view.total === undefined
                ? 'Loading products…'
                : `${formatCount(view.total)} ${view.total === 1 ? 'product' : 'products'}`}
            </p>
          </header>
          {(itemErrors.length > 0 || staleParts.length > 0) && (
            <div className="page-notices" data-testid="grid-notices">
              {itemErrors.map((error) => {
                const part = error.source.slice('items.'.length)
                return (
                  <p key={error.source} className="page-notice">
                    {unavailableText(part)} for {formatCount(error.item_count ?? error.items?.length ?? 0)}{' '}
                    of these products.
                  </p>
                )
              })}
              {staleParts.map(([source, age]) => (
                <p key={source} className="page-notice page-notice--quiet">
                  Some {source.slice('items.'.length)} data is from the cache ({formatAge(age ?? 0)} old).
                </p>
              ))}
            </div>
          )}
          {view.items === null ? (
            <PartNotice part="items" reason={stream.failed.items} />
          ) : view.items === undefined ? (
            <ul className="grid grid--loading" aria-busy="true">
              {Array.from({ length: 8 }, (_, i) => (
                <li key={i}>
                  <TileSkeleton />
                </li>
              ))}
            </ul>
          ) : view.items.length === 0 ? (
            <p className="empty">No products here yet.</p>
          ) : (
            <ul className="grid" data-testid="grid">
              {view.items.map((tile) => (
                <li key={tile.id}>
                  <ProductTile tile={tile} />
                </li>
              ))}
            </ul>
          )}
          {pages > 1 && (
            <nav className="pagination" aria-label="Pages">
              {page > 1 ? (
                <a className="button button--quiet" href={href.category(slug, page - 1)}>
                  ← Previous
                </a>
              ) : (
                <span />
              )}
              <span className="muted">
                Page {page} of {pages}
              </span>
              {page < pages ? (
                <a className="button button--quiet" href={href.category(slug, page + 1)}>
                  Next →
                </a>
              ) : (
                <span />
              )}
            </nav>
          )}
        </>
      )}
    </section>
  )
}
