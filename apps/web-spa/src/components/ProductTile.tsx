import { Fragment } from 'react'
import type { ProductTile as Tile } from '../api/types'
import { formatCount, formatPrice, formatRating, salePrice, stars } from '../format'
import { href } from '../router'
import { ProductImage } from './ProductImage'
import { unavailableText } from './parts'

/** One product of a list (a category's grid, related products), linking to its page. */
export function ProductTile({ tile }: { tile: Tile }) {
  const failed = new Set(tile.failed ?? [])
  if (tile.price === null) failed.add('pricing')
  if (tile.stock === null) failed.add('inventory')
  if (tile.rating === null) failed.add('rating')
  const notice = (part: string) => (
    <p className="tile-notice" data-testid={`tile-notice-${tile.id}-${part}`} role="status">
      {unavailableText(part)}
    </p>
  )
  return (
    <a className="tile" href={href.product(tile.id)} data-testid={`tile-${tile.id}`}>
      <ProductImage src={tile.image} alt={tile.name} className="tile__image" />
      <div className="tile__body">
        <h3 className="tile__name">{tile.name}</h3>
        {tile.rating ? (
          <p className="tile__rating">
            <span className="stars stars--small" aria-hidden="true">
              {stars(tile.rating.average)}
            </span>{' '}
            {formatRating(tile.rating.average)}{' '}
            <span className="muted">({formatCount(tile.rating.count)})</span>
          </p>
        ) : (
          failed.has('rating') && notice('rating')
        )}
        <div className="tile__footer">
          {tile.price ? (
            <p className="tile__price">
              {formatPrice(salePrice(tile.price.amount, tile.price.discount_pct), tile.price.currency)}
              {tile.price.discount_pct > 0 && (
                <>
                  <s className="price__was">{formatPrice(tile.price.amount, tile.price.currency)}</s>
                  <span className="price__discount">−{tile.price.discount_pct}%</span>
                </>
              )}
            </p>
          ) : (
            failed.has('pricing') && notice('pricing')
          )}
          {tile.stock ? (
            <p className={`tile__stock ${tile.stock.in_stock ? 'is-in' : 'is-out'}`}>
              <span className="dot" aria-hidden="true" />
              {tile.stock.in_stock ? 'In stock' : 'Out of stock'}
            </p>
          ) : (
            failed.has('inventory') && notice('inventory')
          )}
        </div>
        {[...failed]
          .filter((part) => !['pricing', 'inventory', 'rating'].includes(part))
          .map((part) => (
            <Fragment key={part}>{notice(part)}</Fragment>
          ))}
      </div>
    </a>
  )
}

/** A tile's shape while its list is loading. */
export function TileSkeleton() {
  return (
    <div className="tile tile--skeleton" aria-hidden="true">
      <div className="product-image tile__image skeleton" />
      <div className="tile__body">
        <span className="skeleton skeleton--line" />
        <span className="skeleton skeleton--line skeleton--short" />
        <span className="skeleton skeleton--price" />
      </div>
    </div>
  )
}
