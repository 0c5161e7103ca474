/** How amounts, ratings and ages read on the page. */

const LOCALE = 'en-GB'

function currencyFormat(currency: string): Intl.NumberFormat {
  try {
    return new Intl.NumberFormat(LOCALE, { style: 'currency', currency })
  } catch {
    return new Intl.NumberFormat(LOCALE, { style: 'currency', currency: 'EUR' })
  }
}

/** A price in minor units (cents), formatted with as many decimals as its currency has. */
export function formatPrice(amount: number, currency: string): string {
  const format = currencyFormat(currency)
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2
  return format.format(amount / 10 ** digits)
}

/** What is paid: `amount` (minor units) less `discountPct` percent, to the minor unit. */
export function salePrice(amount: number, discountPct: number): number {
  return Math.round((amount * (100 - discountPct)) / 100)
}

export function formatCount(count: number): string {
  return count.toLocaleString(LOCALE)
}

export function formatRating(average: number): string {
  return average.toFixed(1)
}

/** `★★★★☆` for 4.2 (rounded to the nearest star). */
export function stars(average: number): string {
  const full = Math.max(0, Math.min(5, Math.round(average)))
  return '★'.repeat(full) + '☆'.repeat(5 - full)
}

/** An age in seconds, as a person says it: `12 s`, `3 min`, `2 h`. */
export function formatAge(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`
  return `${Math.round(seconds / 3600)} h`
}

export function formatMs(ms: number): string {
  return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`
}

const UNITS: Record<string, string> = {
  g: 'g',
  kg: 'kg',
  l: 'l',
  w: 'W',
  hz: 'Hz',
  in: 'in',
  mm: 'mm',
  cm: 'cm',
  bar: 'bar',
}

/** `weight_g` -> `Weight (g)`, `refresh_hz` -> `Refresh (Hz)`, `battery_hours` -> `Battery hours`. */
export function attributeLabel(name: string): string {
  const suffix = /_([a-z]+)$/.exec(name)
  const unit = suffix ? UNITS[suffix[1] ?? ''] : undefined
  const words = (unit && suffix ? name.slice(0, suffix.index) : name).replace(/_/g, ' ')
  const label = words.charAt(0).toUpperCase() + words.slice(1)
  return unit ? `${label} (${unit})` : label
}

export function attributeValue(value: unknown): string {
  if (typeof value === 'boolean') return value ? 'Yes' : 'No'
  if (Array.isArray(value)) return value.map(attributeValue).join(', ')
  if (value !== null && typeof value === 'object') return JSON.stringify(value)
  return String(value)
}

/** What a cart line costs: its unit price, discount applied, times its quantity (minor units). */
export function lineTotal(price: { amount: number; discount_pct: number }, quantity: number): number {
  return salePrice(price.amount, price.discount_pct) * quantity
}

/** How many items a cart holds: the sum of its lines' quantities. */
export function itemCount(lines: readonly { quantity: number }[] | undefined): number {
  return (lines ?? []).reduce((sum, line) => sum + line.quantity, 0)
}

/** `1 item`, `3 items`. */
export function formatItems(count: number): string {
  return `${formatCount(count)} ${count === 1 ? 'item' : 'items'}`
}

/** The cart's total as the page says it; `—` when no line has a price. */
export function formatTotal(total: { amount: number; currency: string } | null | undefined): string {
  return total ? formatPrice(total.amount, total.currency) : '—'
}
