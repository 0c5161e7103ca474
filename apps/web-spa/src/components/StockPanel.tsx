import type { Inventory } from '../api/types'
import { formatCount } from '../format'
import { PartPanel } from './PartPanel'
import type { PartState } from './parts'

/** The product's stock (`inventory`): in stock or not, and how many in which warehouse. */
export function StockPanel({ state }: { state: PartState<Inventory> }) {
  return (
    <PartPanel part="inventory" testId="stock" title="Availability" state={state}>
      {(inventory) => (
        <div className="stock">
          <p className={`stock__status ${inventory.in_stock ? 'is-in' : 'is-out'}`}>
            <span className="dot" aria-hidden="true" />
            {inventory.in_stock ? 'In stock' : 'Out of stock'}
            {inventory.in_stock && (
              <span className="muted"> · {formatCount(inventory.quantity)} available</span>
            )}
          </p>
          {inventory.warehouses.length > 0 && (
            <ul className="stock__warehouses">
              {inventory.warehouses.map((warehouse) => (
                <li key={warehouse.id}>
                  <span>{warehouse.id}</span>
                  <span className="muted">{formatCount(warehouse.qty)}</span>
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </PartPanel>
  )
}
