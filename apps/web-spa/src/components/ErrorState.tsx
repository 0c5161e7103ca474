import type { Problem } from '../api/types'
import { href } from '../router'

interface ErrorStateProps {
  problem: Problem
  /** what the page shows (`Product`): a 404 then reads `Product not found (404)` */
  subject?: string
  onRetry?: () => void
  /** the title's heading: `h1` for a page, `h2` for a section of one (the home page's picks) */
  heading?: 'h1' | 'h2'
}

/** Why a page could not be shown: the problem's title, status and detail. */
export function ErrorState({ problem, subject, onRetry, heading: Heading = 'h1' }: ErrorStateProps) {
  const status = problem.status > 0 ? ` (${problem.status})` : ''
  const title = problem.status === 404 && subject ? `${subject} not found` : problem.title
  const retryable = problem.status === 0 || problem.status >= 500
  return (
    <div className="error-state" data-testid="error-state" role="alert">
      <Heading className="error-state__title">
        {title}
        {status}
      </Heading>
      {problem.detail && <p className="error-state__detail">{problem.detail}</p>}
      {problem.errors && problem.errors.length > 0 && (
        <ul className="error-state__errors">
          {problem.errors.map((error) => (
            <li key={error.source}>
              <code>{error.source}</code>: {error.reason}
              {error.status ? ` (${error.status})` : ''}
            </li>
          ))}
        </ul>
      )}
      <p className="error-state__actions">
        {onRetry && retryable && (
          <button type="button" className="button" onClick={onRetry}>
            Try again
          </button>
        )}
        <a className="button button--quiet" href={href.home()}>
          Back to the shop
        </a>
      </p>
    </div>
  )
}
