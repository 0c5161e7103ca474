import type { Problem } from '../api/types'

interface ProblemBannerProps {
  problem: Problem
  /** what to offer: `Try again` repeats the same attempt (with its idempotency key) */
  onRetry?: () => void
  retryLabel?: string
  testId?: string
}

/** Why a write (or the cart) failed, as the pages show a problem: its title, status and detail. */
export function ProblemBanner({ problem, onRetry, retryLabel = 'Try again', testId = 'problem' }: ProblemBannerProps) {
  const status = problem.status > 0 ? ` (${problem.status})` : ''
  return (
    <div className="banner" role="alert" data-testid={testId}>
      <span>
        <strong>
          {problem.title}
          {status}
        </strong>
        {problem.detail ? `: ${problem.detail}` : ''}
        {problem.fields && problem.fields.length > 0 && <> ({problem.fields.join(', ')})</>}
      </span>
      {onRetry && (
        <button type="button" className="button button--small" onClick={onRetry}>
          {retryLabel}
        </button>
      )}
    </div>
  )
}
