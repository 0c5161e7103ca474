import { formatAge } from '../format'

/** A part served from the cache past its freshness, because its service failed. */
export function StaleBadge({ part, age }: { part: string; age: number }) {
  return (
    <span
      className="stale-badge"
      data-testid={`stale-${part}`}
      title={`Served from the cache, ${formatAge(age)} old: the live answer failed`}
    >
      stale · {formatAge(age)}
    </span>
  )
}
