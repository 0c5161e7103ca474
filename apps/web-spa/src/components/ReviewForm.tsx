import { useRef, useState, type FormEvent } from 'react'
import { AttemptKeys } from '../api/attempt'
import { CAN_SIGN_IN, useSession } from '../api/session'
import type { Problem } from '../api/types'
import { writeReview, type ReviewBody } from '../api/writes'
import { stars as starText } from '../format'
import { ProblemBanner } from './ProblemBanner'

const MAX_TEXT = 2000

/** The signed-in user's review of a product: stars and a text, sent once per attempt. */
export function ReviewForm({ productId, onWritten }: { productId: string; onWritten: () => void }) {
  const session = useSession()
  const [stars, setStars] = useState(5)
  const [text, setText] = useState('')
  const [sending, setSending] = useState(false)
  const [problem, setProblem] = useState<Problem | null>(null)
  const [written, setWritten] = useState(false)
  const keys = useRef(new AttemptKeys())
  const running = useRef(false)

  if (!CAN_SIGN_IN) return null
  if (!session) return <p className="review-form muted">Sign in to write a review.</p>

  async function send() {
    // A second submit while the first runs is the same attempt, already on its way.
    if (running.current) return
    running.current = true
    setSending(true)
    setProblem(null)
    const body: ReviewBody = { stars, text: text.trim() }
    const answer = await writeReview(productId, body, keys.current.keyFor(body))
    keys.current.settle(answer.status)
    running.current = false
    setSending(false)
    if (answer.ok) {
      setText('')
      setWritten(true)
      onWritten()
    } else {
      setProblem(answer.problem)
    }
  }

  function submit(event: FormEvent) {
    event.preventDefault()
    void send()
  }

  const empty = text.trim().length === 0
  return (
    <form className="review-form" onSubmit={submit} data-testid="review-form" aria-label="Write a review">
      <h3>Write a review</h3>
      <fieldset className="review-form__stars">
        <legend>Your rating</legend>
        {[1, 2, 3, 4, 5].map((n) => (
          <label key={n} title={`${n} of 5`}>
            <input
              type="radio"
              name="stars"
              value={n}
              checked={stars === n}
              onChange={() => setStars(n)}
              data-testid={`review-stars-${n}`}
            />
            <span aria-hidden="true">{starText(n).slice(0, n)}</span>
            <span className="visually-hidden">{n} stars</span>
          </label>
        ))}
      </fieldset>
      <label className="review-form__text">
        <span>Your review</span>
        <textarea
          value={text}
          maxLength={MAX_TEXT}
          rows={3}
          onChange={(event) => {
            setText(event.target.value)
            setWritten(false)
          }}
          data-testid="review-text"
        />
      </label>
      <p>
        <button type="submit" className="button" disabled={sending || empty} data-testid="review-submit">
          {sending ? 'Sending…' : 'Post review'}
        </button>
      </p>
      {written && (
        <p className="muted" role="status" data-testid="review-written">
          Thank you, {session.name}: your review is posted.
        </p>
      )}
      {problem && <ProblemBanner problem={problem} onRetry={() => void send()} testId="review-problem" />}
    </form>
  )
}
