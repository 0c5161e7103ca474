import type { PartError, ProductTile as Tile } from '../api/types'
import { formatAge, formatCount } from '../format'
import type { AggregateStream } from '../hooks/useAggregateStream'
import { PartNotice } from './PartNotice'
import { ProductTile, TileSkeleton } from './ProductTile'
import { unavailableText } from './parts'

/** A list answer: its tiles under `items`, `null` when that part failed. */
interface TileListView {
  items?: Tile[] | null
}

interface TileListProps<V extends TileListView> {
  stream: AggregateStream<V>
  /** what an empty list says */
  empty: string
  /** the grid's test id; its notices are `<testId>-notices` */
  testId: string
  /** how many skeleton tiles stand in while loading */
  skeletons?: number
}

/**
 * The tiles of a list screen (a category's page, the home page's picks) as a grid, with what
 * failed: the item-level failures (`items.pricing`) and stale parts summed up over the list
 * (each tile says its own), the whole list's failure, skeletons while loading.
 */
export function TileList<V extends TileListView>({ stream, empty, testId, skeletons = 8 }: TileListProps<V>) {
  const items = stream.view.items
  return (
    <>
      <ItemNotices errors={stream.errors} stale={stream.stale} testId={`${testId}-notices`} />
      {items === null ? (
        <PartNotice part="items" reason={stream.failed.items} />
      ) : items === undefined ? (
        stream.status === 'done' || stream.status === 'error' ? (
          <PartNotice part="items" lost={stream.status === 'error'} />
        ) : (
          <ul className="grid grid--loading" aria-busy="true">
            {Array.from({ length: skeletons }, (_, i) => (
              <li key={i}>
                <TileSkeleton />
              </li>
            ))}
          </ul>
        )
      ) : items.length === 0 ? (
        <p className="empty">{empty}</p>
      ) : (
        <ul className="grid" data-testid={testId}>
          {items.map((tile) => (
            <li key={tile.id}>
              <ProductTile tile={tile} />
            </li>
          ))}
        </ul>
      )}
    </>
  )
}

function ItemNotices({
  errors,
  stale,
  testId,
}: {
  errors: PartError[]
  stale: Partial<Record<string, number>>
  testId: string
}) {
  const itemErrors = errors.filter((e) => e.source.startsWith('items.'))
  const staleParts = Object.entries(stale).filter(([source]) => source.startsWith('items.'))
  if (itemErrors.length === 0 && staleParts.length === 0) return null
  return (
    <div className="page-notices" data-testid={testId}>
      {itemErrors.map((error) => {
        const part = error.source.slice('items.'.length)
        return (
          <p key={error.source} className="page-notice">
            {unavailableText(part)} for {formatCount(error.item_count ?? error.items?.length ?? 0)} of these
            products.
          </p>
        )
      })}
      {staleParts.map(([source, age]) => (
        <p key={source} className="page-notice page-notice--quiet">
          Some {source.slice('items.'.length)} data is from the cache ({formatAge(age ?? 0)} old).
        </p>
      ))}
    </div>
  )
}
