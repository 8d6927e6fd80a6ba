tmall3921847562019384756"2026-11-25T10:00:00+08:00ªL
act-1
op-7operator	taking it" 0123456789abcdef0123456789abcdef*op-9