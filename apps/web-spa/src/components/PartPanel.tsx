import type { ReactNode } from 'react'
import { PartNotice } from './PartNotice'
import type { PartState } from './parts'
import { StaleBadge } from './StaleBadge'

interface PartPanelProps<T> {
  /** the part's name on the BFF (`pricing`): names the notice's and the badge's test ids */
  part: string
  testId: string
  title: string
  state: PartState<T>
  /** shown while the part is pending */
  placeholder?: ReactNode
  children: (value: T) => ReactNode
}

/** A panel of the product page that fills in when its part arrives. */
export function PartPanel<T>({ part, testId, title, state, placeholder, children }: PartPanelProps<T>) {
  return (
    <section
      className={`panel panel--${state.state}`}
      data-testid={testId}
      data-state={state.state}
      aria-busy={state.state === 'pending'}
      aria-label={title}
    >
      <header className="panel__header">
        <h2 className="panel__title">{title}</h2>
        {state.state === 'ready' && state.staleAge !== undefined && (
          <StaleBadge part={part} age={state.staleAge} />
        )}
      </header>
      {state.state === 'pending' &&
        (placeholder ?? (
          <div className="placeholder" aria-hidden="true">
            <span className="skeleton skeleton--line" />
            <span className="skeleton skeleton--line skeleton--short" />
          </div>
        ))}
      {state.state === 'failed' && (
        <PartNotice part={part} reason={state.reason} status={state.status} lost={state.lost} />
      )}
      {state.state === 'ready' && children(state.value)}
    </section>
  )
}
