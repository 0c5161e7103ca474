import type { Pricing } from '../api/types'
import { formatPrice, salePrice } from '../format'
import { PartPanel } from './PartPanel'
import type { PartState } from './parts'

/** The product's price (`pricing`): what is paid, and the price before its discount. */
export function PricePanel({ state }: { state: PartState<Pricing> }) {
  return (
    <PartPanel
      part="pricing"
      testId="price"
      title="Price"
      state={state}
      placeholder={
        <div className="placeholder" aria-hidden="true">
          <span className="skeleton skeleton--price" />
        </div>
      }
    >
      {(pricing) => (
        <p className="price">
          <span className="price__amount">
            {formatPrice(salePrice(pricing.amount, pricing.discount_pct), pricing.currency)}
          </span>
          {pricing.discount_pct > 0 && (
            <>
              <s className="price__was">{formatPrice(pricing.amount, pricing.currency)}</s>
              <span className="price__discount">−{pricing.discount_pct}%</span>
            </>
          )}
        </p>
      )}
    </PartPanel>
  )
}
