import type { FailureReason } from '../api/types'
import { reasonText, unavailableText } from './parts'

interface PartNoticeProps {
  part: string
  reason?: FailureReason
  status?: number | null
  /** the stream broke before the part arrived */
  lost?: boolean
}

/** A small inline notice where a part would be: `Reviews unavailable: it did not arrive in time`. */
export function PartNotice({ part, reason, status, lost }: PartNoticeProps) {
  const why = lost ? 'the connection was lost before it arrived' : reasonText(reason, status)
  return (
    <p className="part-notice" data-testid={`part-notice-${part}`} data-reason={reason} role="status">
      <span className="part-notice__icon" aria-hidden="true">
        !
      </span>
      <span>
        <strong>{unavailableText(part)}</strong>: {why}.
      </span>
    </p>
  )
}
