import { useCallback, useState } from 'react'
import type { Product, ProductPage as ProductPageView, Reviews } from '../api/types'
import { productUrl } from '../api/urls'
import { CATEGORIES } from '../categories'
import { attributeLabel, attributeValue, formatMs } from '../format'
import { useAggregateStream } from '../hooks/useAggregateStream'
import { href } from '../router'
import { AddToCart } from './AddToCart'
import { ErrorState } from './ErrorState'
import { PartPanel } from './PartPanel'
import { partState, type PartState } from './parts'
import { PricePanel } from './PricePanel'
import { ProductImage } from './ProductImage'
import { ProductTile } from './ProductTile'
import { ReviewForm } from './ReviewForm'
import { ReviewsPanel } from './ReviewsPanel'
import { StockPanel } from './StockPanel'

/**
 * The product page: the product as soon as `ready` arrives, then its stock, price, reviews and
 * related products as their events come, each panel on its own.
 */
export function ProductPage({ id }: { id: string }) {
  const stream = useAggregateStream<ProductPageView>(productUrl(id))
  const { status, view, problem, retry } = stream
  const product = view.product
  // The reviews read again after the user wrote one (the BFF dropped the cached ones), shown
  // in place of the streamed part without reloading the whole page.
  const [freshReviews, setFreshReviews] = useState<Reviews | null>(null)
  const reloadReviews = useCallback(async () => {
    try {
      const response = await fetch(productUrl(id, ['product', 'reviews']), {
        headers: { Accept: 'application/json' },
      })
      const page = response.ok ? ((await response.json()) as ProductPageView) : null
      if (page?.reviews) setFreshReviews(page.reviews)
      else retry()
    } catch {
      retry()
    }
  }, [id, retry])
  const reviewsState: PartState<Reviews> = freshReviews
    ? { state: 'ready', value: freshReviews }
    : partState(stream, 'reviews')

  return (
    <article className="page product-page" data-testid="product-page" data-status={status}>
      {!product ? (
        status === 'error' && problem ? (
          <ErrorState problem={problem} subject="Product" onRetry={stream.retry} />
        ) : (
          <ProductSkeleton />
        )
      ) : (
        <>
          {status === 'error' && problem && (
            <div className="banner" role="alert">
              <span>
                <strong>{problem.title}</strong>: {problem.detail}
              </span>
              <button type="button" className="button button--small" onClick={stream.retry}>
                Reload
              </button>
            </div>
          )}
          <Breadcrumb product={product} />
          <div className="product-layout">
            <Gallery product={product} />
            <div className="product-info">
              <h1 className="product-name" data-testid="product-name">
                {product.name}
              </h1>
              <PricePanel state={partState(stream, 'pricing')} />
              <StockPanel state={partState(stream, 'inventory')} />
              <AddToCart productId={product.id} />
              <p className="product-description">{product.description}</p>
              <Attributes attributes={product.attributes} />
            </div>
          </div>
          <ReviewsPanel state={reviewsState} />
          <ReviewForm productId={product.id} onWritten={() => void reloadReviews()} />
          <PartPanel
            part="related"
            testId="related"
            title="More from this category"
            state={partState(stream, 'related')}
          >
            {(tiles) =>
              tiles.length ? (
                <ul className="grid grid--related">
                  {tiles.map((tile) => (
                    <li key={tile.id}>
                      <ProductTile tile={tile} />
                    </li>
                  ))}
                </ul>
              ) : (
                <p className="muted">Nothing else in this category.</p>
              )
            }
          </PartPanel>
          {stream.timing && <Timing timing={stream.timing} />}
        </>
      )}
    </article>
  )
}

function Breadcrumb({ product }: { product: Product }) {
  const category = CATEGORIES.find((c) => c.slug === product.category)
  return (
    <nav className="breadcrumb" aria-label="Breadcrumb">
      <a href={href.home()}>Shop</a> <span aria-hidden="true">/</span>{' '}
      <a href={href.category(product.category)}>{category?.name ?? product.category}</a>{' '}
      <span aria-hidden="true">/</span> {product.name}
    </nav>
  )
}

function Gallery({ product }: { product: Product }) {
  const [selected, setSelected] = useState(0)
  const images = product.images
  const current = images[Math.min(selected, images.length - 1)]
  return (
    <div className="gallery">
      <ProductImage src={current} alt={product.name} className="gallery__main" />
      {images.length > 1 && (
        <ul className="gallery__thumbs">
          {images.map((image, index) => (
            <li key={image}>
              <button
                type="button"
                className={`gallery__thumb ${index === selected ? 'is-selected' : ''}`}
                onClick={() => setSelected(index)}
                aria-label={`Picture ${index + 1} of ${images.length}`}
                aria-pressed={index === selected}
              >
                <ProductImage src={image} alt="" />
              </button>
            </li>
          ))}
        </ul>
      )}
    </div>
  )
}

function Attributes({ attributes }: { attributes: Product['attributes'] }) {
  const entries = Object.entries(attributes)
  if (entries.length === 0) return null
  return (
    <dl className="attributes">
      {entries.map(([name, value]) => (
        <div key={name} className="attributes__row">
          <dt>{attributeLabel(name)}</dt>
          <dd>{attributeValue(value)}</dd>
        </div>
      ))}
    </dl>
  )
}

function Timing({ timing }: { timing: Record<string, number> }) {
  const { total, ...parts } = timing
  return (
    <footer className="timing muted" data-testid="timing">
      {total !== undefined && <>Answered in {formatMs(total)}</>}
      {Object.entries(parts).map(([part, ms]) => (
        <span key={part}>
          {' '}
          · {part} {formatMs(ms)}
        </span>
      ))}
    </footer>
  )
}

function ProductSkeleton() {
  return (
    <div className="product-layout" aria-busy="true" aria-label="Loading the product">
      <div className="gallery">
        <div className="product-image gallery__main skeleton" />
      </div>
      <div className="product-info">
        <span className="skeleton skeleton--title" />
        <span className="skeleton skeleton--price" />
        <span className="skeleton skeleton--line" />
        <span className="skeleton skeleton--line" />
        <span className="skeleton skeleton--line skeleton--short" />
      </div>
    </div>
  )
}
