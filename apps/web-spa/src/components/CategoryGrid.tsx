import type { CategoryPage } from '../api/types'
import { categoryUrl, CATEGORY_PAGE_SIZE } from '../api/urls'
import { CATEGORIES } from '../categories'
import { formatCount } from '../format'
import { useAggregateStream } from '../hooks/useAggregateStream'
import { href } from '../router'
import { ErrorState } from './ErrorState'
import { TileList } from './TileList'

/**
 * A page of a category's products, as tiles; a tile whose price failed says so itself. Each
 * tile has its own "Add to cart" (the header's cart count follows).
 */
export function CategoryGrid({ slug, page }: { slug: string; page: number }) {
  const offset = (page - 1) * CATEGORY_PAGE_SIZE
  const stream = useAggregateStream<CategoryPage>(categoryUrl(slug, offset))
  const { view, status } = stream
  const name = view.name ?? CATEGORIES.find((c) => c.slug === slug)?.name ?? slug
  const pages = view.total === undefined ? 1 : Math.max(1, Math.ceil(view.total / CATEGORY_PAGE_SIZE))

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
          <TileList stream={stream} empty="No products here yet." testId="grid" />
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
