/** The shop's categories, as the header lists them (each page's own name comes from the BFF). */
export const CATEGORIES: readonly { slug: string; name: string }[] = [
  { slug: 'audio', name: 'Audio' },
  { slug: 'outdoor', name: 'Outdoor' },
  { slug: 'kitchen', name: 'Kitchen' },
  { slug: 'apparel', name: 'Apparel' },
  { slug: 'home', name: 'Home' },
  { slug: 'computing', name: 'Computing' },
  { slug: 'sports', name: 'Sports' },
  { slug: 'photo', name: 'Photo' },
]
