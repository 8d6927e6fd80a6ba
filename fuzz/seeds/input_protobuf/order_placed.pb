tmall3921847562019384756"2026-11-25T10:00:00+08:00R�
tb_8a41f2c07e13800138000U
	浙江省	杭州市	西湖区"2文三路 478 号华星时代广场 A 座 1203 室"
TEA-LJ-250Gtea ��"!
CUP-GLASS-350kitchenware �.(�0�8��BalipayJstore_couponRC
company$杭州西湖龙井茶业有限公司91330106MA27XK3F5B