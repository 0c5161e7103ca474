import { Fragment } from 'react'
import type { ProductTile as Tile } from '../api/types'
import { formatCount, formatPrice, formatRating, salePrice, stars } from '../format'
import { href } from '../router'
import { AddToCart } from './AddToCart'
import { ProductImage } from './ProductImage'
import { unavailableText } from './parts'

/**
 * One product of a list (a category's grid, the home page's picks, related products), linking
 * to its page, with its own "Add to cart". The link is the product's name, stretched over the
 * whole tile by CSS (`.tile__link::after`), so a click anywhere opens the product; the button
 * sits above that and beside the link, not inside it (a button inside a link is neither valid
 * HTML nor usable with a screen reader), so it never navigates.
 */
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
    <article className="tile" data-testid={`tile-${tile.id}`}>
      <ProductImage src={tile.image} alt={tile.name} className="tile__image" />
      <div className="tile__body">
        <h3 className="tile__name">
          <a className="tile__link" href={href.product(tile.id)} data-testid={`tile-link-${tile.id}`}>
            {tile.name}
          </a>
        </h3>
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
        <AddToCart productId={tile.id} name={tile.name} compact />
      </div>
    </article>
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
