import type { Reviews } from '../api/types'
import { formatCount, formatRating, stars } from '../format'
import { PartPanel } from './PartPanel'
import type { PartState } from './parts'

/** The product's reviews: its average, how many, and the top ones. */
export function ReviewsPanel({ state }: { state: PartState<Reviews> }) {
  return (
    <PartPanel
      part="reviews"
      testId="reviews"
      title="Reviews"
      state={state}
      placeholder={
        <div className="placeholder" aria-hidden="true">
          <span className="skeleton skeleton--line skeleton--short" />
          <span className="skeleton skeleton--block" />
          <span className="skeleton skeleton--block" />
        </div>
      }
    >
      {(reviews) => (
        <div className="reviews">
          <p className="reviews__summary">
            <span className="stars" aria-hidden="true">
              {stars(reviews.average)}
            </span>
            <strong>{formatRating(reviews.average)}</strong>
            <span className="muted">
              {' '}
              out of 5 · {formatCount(reviews.count)} {reviews.count === 1 ? 'review' : 'reviews'}
            </span>
          </p>
          {reviews.top.length > 0 ? (
            <ul className="reviews__list">
              {reviews.top.map((review, index) => (
                <li key={`${review.author}-${index}`} className="review">
                  <p className="review__head">
                    <span className="stars stars--small" aria-label={`${review.stars} of 5 stars`}>
                      {stars(review.stars)}
                    </span>
                    <span className="review__author">{review.author}</span>
                  </p>
                  <p className="review__text">{review.text}</p>
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted">No reviews yet.</p>
          )}
        </div>
      )}
    </PartPanel>
  )
}
