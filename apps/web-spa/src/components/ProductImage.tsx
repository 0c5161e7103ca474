import { useState } from 'react'

interface ProductImageProps {
  src: string | null | undefined
  alt: string
  className?: string
}

/** A product's picture; a neutral placeholder with its initial when it has none or it fails. */
export function ProductImage({ src, alt, className = '' }: ProductImageProps) {
  const [broken, setBroken] = useState<string | null>(null)
  const show = src && broken !== src
  return (
    <div className={`product-image ${className}`} data-initial={alt.trim().charAt(0).toUpperCase()}>
      {show && (
        <img src={src} alt={alt} loading="lazy" decoding="async" onError={() => setBroken(src)} />
      )}
    </div>
  )
}
